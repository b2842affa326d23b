import Dispatch
import NIOCore
import WharfCore

/// `wharf client --pool N --requests M`: the seed's pulsar client as a tiny load tool. M
/// separator-framed requests go over N connections at once, one request in flight per
/// connection (each waits for its reply), and the run reports replies, errors and latency.
/// Everything runs on one event loop; the main thread waits for the end.
final class ClientLoad: @unchecked Sendable {
    struct Settings {
        var host: String
        var port: Int
        var connections: Int
        var requests: Int
        var separator: [UInt8]
        /// The request body; "{n}" becomes the request's number.
        var message: String
        /// Each reply must equal its request (an echo service).
        var checkEcho: Bool
        var options: ConnectOptions
    }

    struct Report {
        var requests = 0
        var replies = 0
        /// Replies that were not the echo of their request (with --check-echo), or began
        /// with "-ERR".
        var wrongReplies = 0
        var failedConnects = 0
        /// Connections that closed before all their requests were answered.
        var lostConnections = 0
        var seconds = 0.0
        var latenciesMicros: [Int] = []

        func percentile(_ p: Double) -> Double {
            guard !latenciesMicros.isEmpty else { return 0 }
            let sorted = latenciesMicros.sorted()
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
        }

        var summary: String {
            let rate = seconds > 0 ? Double(replies) / seconds : 0
            return "requests \(requests), replies \(replies), wrong replies \(wrongReplies), failed connects "
                + "\(failedConnects), lost connections \(lostConnections); \(Int(rate)) replies/s over "
                + String(format: "%.2f s; latency ms p50 %.3f p99 %.3f max %.3f", seconds, percentile(0.5),
                         percentile(0.99), percentile(1.0))
        }

        var json: String {
            let rate = seconds > 0 ? Double(replies) / seconds : 0
            return "{\"requests\":\(requests),\"replies\":\(replies),\"wrong_replies\":\(wrongReplies),"
                + "\"failed_connects\":\(failedConnects),\"lost_connections\":\(lostConnections),"
                + String(format: "\"seconds\":%.3f,\"replies_per_second\":%.1f,", seconds, rate)
                + String(format: "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}", percentile(0.5),
                         percentile(0.99), percentile(1.0))
        }
    }

    private let settings: Settings
    private let loop: LoopContext
    private var report = Report()
    private var nextRequest = 0
    private var openSessions = 0
    private var started = NIODeadline.now()
    private let finished = DispatchSemaphore(value: 0)

    init(settings: Settings, loop: LoopContext) {
        self.settings = settings
        self.loop = loop
    }

    /// Runs the whole load; returns once every connection is done.
    func run() -> Report {
        loop.eventLoop.execute { [self] in
            started = .now()
            openSessions = settings.connections
            for _ in 0..<settings.connections {
                ClientStream.connect(on: loop, host: settings.host, port: settings.port, options: settings.options) {
                    [self] result in
                    switch result {
                    case let .success(stream): Session(load: self, stream: stream).next()
                    case .failure:
                        report.failedConnects += 1
                        sessionEnded()
                    }
                }
            }
        }
        finished.wait()
        return report
    }

    /// The next request's bytes, or nil when all have been handed out.
    fileprivate func takeRequest() -> [UInt8]? {
        guard nextRequest < settings.requests else { return nil }
        nextRequest += 1
        report.requests += 1
        let body = settings.message.replacingOccurrences(of: "{n}", with: String(nextRequest))
        return Array(body.utf8) + settings.separator
    }

    fileprivate func replied(_ request: [UInt8], _ reply: [UInt8], after micros: Int) {
        report.replies += 1
        report.latenciesMicros.append(micros)
        let isError = reply.starts(with: Array("-ERR".utf8))
        if isError || (settings.checkEcho && reply != request) { report.wrongReplies += 1 }
    }

    fileprivate func sessionEnded(lost: Bool = false) {
        if lost { report.lostConnections += 1 }
        openSessions -= 1
        if openSessions == 0 {
            report.seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            finished.signal()
        }
    }

    fileprivate var separator: [UInt8] { settings.separator }

    /// One connection: request, wait for the reply, repeat while requests remain.
    private final class Session {
        let load: ClientLoad
        let stream: ClientStream
        var done = false

        init(load: ClientLoad, stream: ClientStream) {
            self.load = load
            self.stream = stream
            stream.onClose = { [self] _ in
                if !done {
                    done = true
                    load.sessionEnded(lost: true)
                }
            }
        }

        func next() {
            guard let request = load.takeRequest() else {
                done = true
                _ = stream.shutdownWrite()
                load.sessionEnded()
                return
            }
            let sent = NIODeadline.now()
            _ = stream.write(request)
            _ = stream.readUntil(load.separator) { [self] result in
                guard case let .success(reply) = result else { return } // the close follows
                load.replied(request, reply, after: Int((NIODeadline.now() - sent).nanoseconds / 1000))
                next()
            }
        }
    }
}
