import ArgumentParser
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The seed tutorial's interactive client (tcp_client.py), on Wharf's own client streams:
/// each stdin line is sent, what comes back is printed, and the session ends when the
/// server closes (e.g. after `over` on the reverse service) or stdin ends. With `--pool`, the
/// pulsar client's shape instead: a load of framed requests over several connections
/// (`ClientLoad`).
struct ClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Talk to a listener: send each stdin line, print what comes back.",
        discussion: """
            Without --separator, each line is sent as typed (no newline) and whatever the server \
            sends is printed; the next line waits for the first reply. With --separator, it is \
            appended to each line and replies are read up to it (escapes: \\n \\r \\t \\\\).
              wharf client 127.0.0.1 8888                       (reverse; 'over' ends it)
              wharf client 127.0.0.1 8889 --separator '\\n'       (line echo)
              wharf client 127.0.0.1 8060 --separator '\\r\\n\\r\\n' (separator echo; QUIT ends it)
            With --pool N --requests M, it sends M requests over N connections at once (each \
            waits for its reply; the separator defaults to \\r\\n\\r\\n) and reports replies and \
            latency:
              wharf client 127.0.0.1 8060 --pool 10 --requests 10000 --check-echo
            """
    )

    @Argument(help: "Host name or IP address.")
    var host: String

    @Argument(help: "Port.")
    var port: Int

    @Option(name: .long, help: "Appended to each line; replies are read up to it.")
    var separator: String = ""

    @Option(name: .long, help: "Connect timeout in milliseconds (covers the TLS handshake too).")
    var timeoutMs: Int = 5000

    @Flag(name: .long, help: "Speak TLS, verifying the server against the system roots (or --ca).")
    var tls = false

    @Option(name: .long, help: "With --tls: PEM file of the roots to verify the server against.")
    var ca: String?

    @Option(name: .long, help: "With --tls: the name to send (SNI) and verify; default: HOST.")
    var serverName: String?

    @Flag(name: .long, help: "With --tls: accept any certificate (testing only).")
    var insecure = false

    @Option(name: .long, help: "Load mode: this many connections, each sending requests one at a time.")
    var pool: Int?

    @Option(name: .long, help: "Load mode: how many requests in all.")
    var requests: Int = 1000

    @Option(name: .long, help: "Load mode: the request body; {n} becomes the request's number.")
    var message: String = "request {n}"

    @Flag(name: .long, help: "Load mode: count a reply that is not its request's echo as wrong.")
    var checkEcho = false

    @Flag(name: .long, help: "Load mode: print the report as one JSON object.")
    var json = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("port must be 1-65535") }
        if !tls, ca != nil || serverName != nil || insecure {
            throw ValidationError("--ca, --server-name and --insecure need --tls")
        }
        if let pool, !(1...100_000).contains(pool) { throw ValidationError("--pool must be 1-100000") }
        if pool != nil, requests < 1 { throw ValidationError("--requests must be at least 1") }
        if pool == nil, checkEcho || json { throw ValidationError("--check-echo and --json need --pool") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = LoopContext(eventLoop: group.next())
        let session = ClientSession(separator: Array(Self.unescape(separator).utf8))

        var options = ConnectOptions()
        if tls {
            guard let secured = ConnectOptions.withTLS(verify: !insecure, caFile: ca, serverName: serverName) else {
                FileHandleOutput.standardError("wharf client: cannot use the TLS options (is --ca readable PEM?)")
                throw ExitStatus.configError
            }
            options = secured
        }
        options.timeout = .milliseconds(Int64(timeoutMs))
        let connectOptions = options
        let host = self.host, port = self.port
        if let pool {
            let framing = separator.isEmpty ? "\r\n\r\n" : Self.unescape(separator)
            let load = ClientLoad(settings: .init(host: host, port: port, connections: pool, requests: requests,
                                                  separator: Array(framing.utf8), message: message,
                                                  checkEcho: checkEcho, options: connectOptions), loop: loop)
            let report = load.run()
            print(json ? report.json : report.summary)
            guard report.replies == report.requests, report.wrongReplies == 0 else { throw ExitStatus.runtimeFailure }
            return
        }
        loop.eventLoop.execute {
            ClientStream.connect(on: loop, host: host, port: port, options: connectOptions) { session.connected($0) }
        }
        session.events.wait()
        guard session.stream != nil else {
            FileHandleOutput.standardError("wharf client: cannot connect to \(host):\(port): \(session.failure)")
            throw ExitStatus.runtimeFailure
        }
        while !session.isClosed, let line = readLine(strippingNewline: true) {
            loop.eventLoop.execute { session.send(line) }
            session.waitForReply()
        }
        loop.eventLoop.execute { session.endInput() }
        while !session.isClosed { session.events.wait() }
    }

    static func unescape(_ text: String) -> String {
        var result = ""
        var escaping = false
        for character in text {
            if escaping {
                switch character {
                case "n": result.append("\n")
                case "r": result.append("\r")
                case "t": result.append("\t")
                default: result.append(character)
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}

/// The client's stream, through the Swift stream API. State changes happen on the loop;
/// the main thread waits on `events`.
final class ClientSession: @unchecked Sendable {
    let separator: [UInt8]
    let events = DispatchSemaphore(value: 0)
    private(set) var stream: ClientStream?
    private(set) var failure = ""
    private let closedFlag = NIOLockedValueBox(false)
    /// A reply is over once the server has been quiet this long (a reply may come in several
    /// writes, e.g. the reverse service's echo and then its reversal).
    static let quietPeriod: DispatchTimeInterval = .milliseconds(100)

    var isClosed: Bool { closedFlag.withLockedValue { $0 } }

    init(separator: [UInt8]) {
        self.separator = separator
    }

    func connected(_ result: Result<ClientStream, StreamError>) {
        switch result {
        case let .success(upstream):
            stream = upstream
            upstream.onClose = { [self] _ in
                closedFlag.withLockedValue { $0 = true }
                events.signal()
            }
            readNext()
        case let .failure(error):
            failure = error.description
            closedFlag.withLockedValue { $0 = true }
        }
        events.signal()
    }

    func send(_ line: String) {
        if stream?.write(Array(line.utf8) + separator) != nil { events.signal() }
    }

    /// On the main thread: waits for the first bytes of the reply (or the close), then for
    /// the server to go quiet, so the next line is not sent into the middle of this reply.
    func waitForReply() {
        events.wait()
        while !isClosed, events.wait(timeout: .now() + Self.quietPeriod) == .success {}
    }

    func endInput() {
        _ = stream?.shutdownWrite()
    }

    private func readNext() {
        let onData: ClientStream.ReadCompletion = { [self] result in
            guard case let .success(bytes) = result else { return } // the close follows
            bytes.withUnsafeBytes { Output.write($0) }
            events.signal()
            readNext()
        }
        if separator.isEmpty {
            _ = stream?.readSome(upTo: 65536, onData)
        } else {
            _ = stream?.readUntil(separator, onData)
        }
    }
}

enum Output {
    /// write(2) to fd 1: unbuffered, so replies show up as they arrive.
    static func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(1, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}
