import Foundation
import WharfTestSupport
import Testing

/// TLS that the relay pump terminates itself, for a plugin that relays at once (`proxy`):
/// the pump runs the handshake, and `connect_relay` carries the session into the pair. The
/// facts, SNI, client certificates, handshake failures and tickets on this path are checked
/// beside NIOSSL's in `TLSTests` and `TLSSessionTicketTests`; these are the pump's own parts.
@Suite struct PumpTLSTests {
    let certs: TestCertificates
    init() throws { certs = try TestCertificates.get() }

    /// Every test runs on both libraries the pump can terminate with (`tls.library`).
    static let libraries = ["openssl", "boringssl"]

    func tlsProxy(to port: Int, library: String, extra: String = "") throws -> RunningWharf {
        let wharf = try RunningWharf(config: """
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(port)"]}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy, tls: {certificate: \(certs.path("a.test.pem")), key: \(certs.path("a.test.key")), library: \(library)}\(extra)}

            """)
        let named = library == "openssl" ? "OpenSSL" : "BoringSSL"
        #expect(eventually { wharf.stderr.contains("accepted by the relay pump, TLS by \(named)") }, "\(wharf.stderr)")
        return wharf
    }

    /// Many records each way (more than one TLS record per read and per write, a socket
    /// that fills), and a clean end: the upstream's FIN reaches the client as close_notify,
    /// which s_client tells from a cut-off stream ("unexpected eof").
    @Test(arguments: Self.libraries) func bytesCrossBothWaysWholeAndTheEndIsCloseNotify(library: String) throws {
        let request = 300_000, reply = 200_000
        let backend = TestServer { fd in
            guard TestServer.read(fd, count: request).count == request else { return }
            TestServer.write(fd, [UInt8](repeating: 66, count: reply) + [10])
        }
        let wharf = try tlsProxy(to: backend.port, library: library)
        let input = String(repeating: "A", count: request - 1) + "\n"
        let output = try openSSLClient(port: try wharf.port("proxy"),
                                       arguments: ["-CAfile", certs.path("ca.pem"), "-servername", "a.test"],
                                       input: input)
        #expect(output.contains(String(repeating: "B", count: reply) + "\n"), "the whole reply: \(output.suffix(300))")
        #expect(!output.contains("unexpected eof") && !output.contains("errno"), "\(output.suffix(300))")
    }

    /// A client the plugin closes itself (here: no upstream answers) hears close_notify, as
    /// from NIOSSL: the stream closes on its bare socket, with no channel built for it.
    @Test(arguments: Self.libraries) func aClientThePluginClosesHearsCloseNotify(library: String) throws {
        let wharf = try tlsProxy(to: LoopbackPort.unused(), library: library)
        let output = try openSSLClient(port: try wharf.port("proxy"), arguments: ["-CAfile", certs.path("ca.pem")],
                                       input: "hello\n")
        #expect(output.contains("verify return:1"), "the handshake finished: \(output)")
        #expect(!output.contains("unexpected eof") && !output.contains("errno"), "\(output)")
    }

    /// Handshakes the loop calls off (their deadline passed while the pump waited for the
    /// client) leave no socket open, in the pump or on the loop.
    @Test(arguments: Self.libraries) func cancelledHandshakesLeaveNothingOpen(library: String) throws {
        let backend = TestServer.echo()
        let wharf = try tlsProxy(to: backend.port, library: library, extra: ", handshake_timeout_ms: 200")
        let port = try wharf.port("proxy")
        let worker = try wharf.workerPID()
        // One served connection first, so everything the worker opens once is open.
        #expect(try openSSLClient(port: port, arguments: ["-CAfile", certs.path("ca.pem")], input: "ping\n")
            .contains("ping\n"))
        let baseline = try Self.openSockets(of: worker)
        let silent = try (0..<20).map { _ in try TestSocket(port: port) }
        let halfway = try TestSocket(port: port)
        try halfway.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]) // a ClientHello's first bytes, no more
        for socket in silent + [halfway] { #expect(socket.isClosedByPeer()) }
        #expect(eventually { (try? Self.openSockets(of: worker)) == baseline },
                "sockets: \((try? Self.openSockets(of: worker)) ?? -1), before: \(baseline)")
        #expect(eventually { wharf.stderr.contains("handshake_timeout_ms passed") })
    }

    /// The worker's open sockets (a loop's pump, started on first use, adds an epoll and an
    /// eventfd, which are not what is counted here).
    static func openSockets(of pid: Int32) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").filter { entry in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"))?
                .hasPrefix("socket:") ?? false
        }.count
    }
}
