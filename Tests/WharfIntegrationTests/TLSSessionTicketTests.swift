import Foundation
import WharfTestSupport
import Testing

/// TLS session resumption with the real binary and `openssl s_client`: tickets are keyed by
/// the supervisor's secret, so a ticket one worker issued resumes on another, here on the
/// worker of the next generation after a reload (a worker with keys of its own would make
/// that a full handshake every time).
@Suite struct TLSSessionTicketTests {
    let certs: TestCertificates
    init() throws { certs = try TestCertificates.get() }

    /// Who terminates TLS: NIOSSL in front of `echo`, or the relay pump's own sessions in
    /// front of `proxy` (which relays at once), to an echo backend, on OpenSSL (`proxy`) or
    /// BoringSSL (`proxyBoringSSL`).
    enum Front: CaseIterable, Sendable {
        case echo, proxy, proxyBoringSSL
    }

    /// The wharf and the port of its TLS listener; `backend` must outlive it.
    func wharf(_ tls: String = "", scratch: TemporaryDirectory, front: Front,
               backend: TestServer) throws -> (RunningWharf, Int) {
        let plugin = switch front {
        case .echo: "echo: {path: echo}"
        case .proxy, .proxyBoringSSL: "proxy: {path: proxy, config: {upstreams: [\"127.0.0.1:\(backend.port)\"]}}"
        }
        let name = front == .echo ? "echo" : "proxy"
        let library = switch front {
        case .echo: ""
        case .proxy: ", library: openssl"
        case .proxyBoringSSL: ", library: boringssl"
        }
        let wharf = try RunningWharf(config: """
            plugins:
              \(plugin)
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: \(name), tls: {certificate: \(certs.path("a.test.pem")), key: \(certs.path("a.test.key"))\(library)\(tls)}}

            """, scratch: scratch)
        return (wharf, try wharf.port(name))
    }

    /// One TLS 1.3 connection: a line echoed, then closed. `save`: write the session (with
    /// the tickets that came) there; `resume`: offer that session. Returns s_client's output.
    func connect(_ port: Int, save: String? = nil, resume: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-servername", "localhost"]
            + (save.map { ["-sess_out", $0] } ?? []) + (resume.map { ["-sess_in", $0] } ?? [])
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data("resume me\n".utf8))
        // The echo comes after the tickets (sent with the handshake): once it is here, the
        // session is complete. Read until then, at most 10 s.
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        let reader = output.fileHandleForReading
        while !text.contains("resume me\n"), Date() < deadline {
            var ready = pollfd(fd: reader.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 200) == 1 else { continue }
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        try input.fileHandleForWriting.close()
        let exitBy = Date().addingTimeInterval(10)
        while process.isRunning, Date() < exitBy { usleep(10_000) }
        if process.isRunning { process.terminate() }
        return text + String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test(arguments: Front.allCases) func aTicketResumesOnTheNextGenerationsWorker(terminator: Front) throws {
        let scratch = try TemporaryDirectory()
        let backend = TestServer.echo()
        let (front, port) = try wharf(scratch: scratch, front: terminator, backend: backend)
        let session = scratch.path("session.pem")
        let first = try connect(port, save: session)
        #expect(first.contains("New, TLSv1.3"), "\(first)")
        #expect(first.contains("New Session Ticket"), "the server sends TLS 1.3 tickets")
        #expect(try connect(port, resume: session).contains("Reused, TLSv1.3"))

        let before = try front.workerPID()
        kill(front.process.processIdentifier, SIGHUP)
        #expect(eventually { front.workerPIDs.count == 1 && front.workerPIDs.first != before },
                "the reload replaced the worker")
        let resumed = try connect(port, resume: session)
        #expect(resumed.contains("Reused, TLSv1.3"), "a ticket from the old worker: \(resumed)")
    }

    /// As OpenSSL (nginx, HAProxy): two tickets after a full handshake, so a client can open
    /// connections in parallel; one after a resumption, which replaces the ticket used.
    @Test(arguments: Front.allCases) func aResumptionIsIssuedOneTicketAndAFullHandshakeTwo(terminator: Front) throws {
        let scratch = try TemporaryDirectory()
        let backend = TestServer.echo()
        let (front, port) = try wharf(scratch: scratch, front: terminator, backend: backend)
        defer { withExtendedLifetime(front) {} }
        func tickets(_ output: String) -> Int { output.components(separatedBy: "New Session Ticket arrived").count - 1 }
        let first = try connect(port, save: scratch.path("first.pem"))
        #expect(first.contains("New, TLSv1.3") && tickets(first) == 2, "\(first)")
        let second = try connect(port, save: scratch.path("second.pem"), resume: scratch.path("first.pem"))
        #expect(second.contains("Reused, TLSv1.3") && tickets(second) == 1, "\(second)")
        let third = try connect(port, resume: scratch.path("second.pem"))
        #expect(third.contains("Reused, TLSv1.3"), "the one ticket resumes: \(third)")
    }

    @Test(arguments: Front.allCases) func withSessionTicketsOffNoneIsSent(terminator: Front) throws {
        let scratch = try TemporaryDirectory()
        let backend = TestServer.echo()
        let (front, port) = try wharf(", session_tickets: false", scratch: scratch, front: terminator,
                                      backend: backend)
        defer { withExtendedLifetime(front) {} }
        let session = scratch.path("session.pem")
        let first = try connect(port, save: session)
        #expect(first.contains("New, TLSv1.3"), "\(first)")
        #expect(!first.contains("New Session Ticket"))
        // Without a ticket a TLS 1.3 session cannot be resumed: s_client has none to save.
        #expect(!FileManager.default.fileExists(atPath: session), "nothing to resume")
    }
}
