import CWharfLinux
import Logging
import NIOCore
import Synchronization

/// One listener's accounting: every connection it accepts is counted once as accepted and
/// once as closed with its reason (in the worker's metrics segment, per event loop), and
/// the ends an operator should hear of are logged: limits, refusals, failed TLS handshakes
/// and bad or missing PROXY headers, each with its running count (read from those same
/// counters); totals at shutdown.
final class ListenerStats: Sendable {
    let name: String
    /// Per event loop, the listener's counters (each written by its loop's thread only).
    let counters: [CounterBlock]
    /// Where its connections' lines go (nil: no access log, or the listener opted out).
    let accessLog: ListenerAccessLog?
    /// `per_client` limits, in the table every worker shares, and this worker's lane in it.
    let clients: (table: ClientTable, limits: ClientLimits, lane: Int)?
    private let clientReport = OncePerSecond()
    private let logger: Logger
    /// Failed TLS handshakes, including clients that reset during one (which the metrics
    /// count as ended by the peer).
    private let tlsHandshakeFailures = Atomic<Int>(0)
    private let deniedReport = OncePerSecond()
    let access: AccessList
    /// This worker's share of `max_connections`, if the listener has one.
    let limit: ConnectionLimit?
    private let rejectedReport = OncePerSecond()

    func accepted(loop: Int) { counters[loop].add(ListenerField.accepted) }

    /// This worker's connections of this listener closed for `reason`, over all its loops.
    private func total(_ reason: CloseReason) -> Int {
        Int(counters.reduce(UInt64(0)) { $0 &+ $1.load(ListenerField.closed + reason.rawValue) })
    }

    func tlsHandshakeDone(loop: Int) { counters[loop].add(ListenerField.tlsHandshakes) }

    private func closed(_ reason: CloseReason, loop: Int) {
        counters[loop].add(ListenerField.closed + reason.rawValue)
    }

    /// Counts an opened connection's end (with how long it lasted), and logs it when one of
    /// the listener's limits closed it. `counted`: the reason was counted already (refused
    /// after its PROXY header). Returns why it ended.
    @discardableResult
    func streamClosed(_ stream: IOStreamHandler, reason: StreamError?, lasted micros: UInt64,
                      counted: CloseReason? = nil) -> CloseReason {
        self.limit?.ended()
        let loop = stream.loop.loopIndex
        let ending = counted ?? CloseReason(reason, peerEnded: stream.hasInputEnded || stream.wasPumped)
        if counted == nil { closed(ending, loop: loop) }
        counters[loop].record(.connectionDuration, at: ListenerField.duration, micros: micros)
        logLimit(stream, reason)
        return ending
    }

    private func logLimit(_ stream: IOStreamHandler, _ reason: StreamError?) {
        let count: Int, limit: String
        switch reason {
        case .idleTimeout: (count, limit) = (total(.idleTimeout), "idle_timeout_ms")
        case .readTimeout: (count, limit) = (total(.readTimeout), "read_timeout_ms")
        case .lifetimeExceeded: (count, limit) = (total(.lifetime), "max_lifetime_ms")
        default: return
        }
        let peer = stream.remoteAddress.map { "\($0)" } ?? "?"
        logger.info("connection closed: \(limit) passed",
                    metadata: ["listener": "\(name)", "stream": "\(stream.streamID)", "peer": "\(peer)",
                               "reason": "\(reason!)", "count": "\(count)"])
    }

    /// What the listener's connections must finish before their plugin sees them.
    let awaiting: Preamble

    init(name: String, logger: Logger, awaiting: Preamble, counters: [CounterBlock], accessLog: ListenerAccessLog? = nil,
         access: AccessList = AccessList(), limit: ConnectionLimit? = nil,
         clients: (table: ClientTable, limits: ClientLimits, lane: Int)? = nil) {
        self.name = name
        self.counters = counters
        self.accessLog = accessLog
        self.clients = clients
        self.logger = logger
        self.awaiting = awaiting
        self.access = access
        self.limit = limit
    }

    /// Takes a newly accepted connection into `max_connections`; false: close it (reject).
    func admitUnderLimit(loop: Int, reserved: Bool = false) -> Bool {
        guard let limit, !limit.admit(reserved: reserved) else { return true }
        closed(.rejected, loop: loop)
        if rejectedReport.record() != nil {
            logger.notice("connection closed: max_connections reached (on_limit: reject)",
                          metadata: ["listener": "\(name)", "share": "\(limit.share)",
                                     "rejected": "\(total(.rejected))"])
        }
        return false
    }

    /// The per-client limits' verdict on a new connection from `client`: nil (no limits, or
    /// admitted untracked), a key to `releaseClient` when it ends, or a refusal, counted and
    /// logged (at most a line a second).
    func admitClient(_ client: SocketAddress?, loop: Int) -> ClientAdmission {
        guard let clients, let key = ClientKey(client) else { return .admitted(nil) }
        switch clients.table.admit(key, lane: clients.lane, limits: clients.limits, now: cwharf_monotonic_ms()) {
        case .admitted: return .admitted(key)
        case .untracked:
            if clientReport.record() != nil {
                logger.warning("the per-client table is full of clients with open connections: admitting without a limit",
                               metadata: ["listener": "\(name)", "table_size": "\(clients.table.capacity)"])
            }
            return .admitted(nil)
        case let refusal:
            let reason: CloseReason = refusal == .overRate ? .clientRate : .clientLimit
            closed(reason, loop: loop)
            if let report = clientReport.record() {
                let limit = reason == .clientRate
                    ? "per_client.connections_per_second (\(clients.limits.connectionsPerSecond)/s)"
                    : "per_client.max_connections (\(clients.limits.maxConnections))"
                logger.notice("connection closed: \(limit) reached",
                              metadata: ["listener": "\(name)", "client": "\(client?.ipAddress ?? "?")",
                                         "refused": "\(report)"])
            }
            return .refused(reason)
        }
    }

    enum ClientAdmission {
        /// With the key to release when the connection ends (nil: nothing to release).
        case admitted(ClientKey?)
        case refused(CloseReason)
    }

    func releaseClient(_ key: ClientKey) {
        clients?.table.release(key, lane: clients!.lane)
    }

    /// Whether `client` may connect; a refusal is counted and logged (at most a line a second,
    /// with how many it stands for).
    func admits(_ client: SocketAddress?, loop: Int) -> Bool {
        guard !access.permits(client) else { return true }
        closed(.denied, loop: loop)
        if let report = deniedReport.record() {
            logger.notice("connection refused by the listener's allow/deny list",
                          metadata: ["listener": "\(name)", "client": "\(client?.ipAddress ?? "?")",
                                     "refused": "\(report)", "total": "\(total(.denied))"])
        }
        return false
    }

    /// Counts and logs a connection that ended before its plugin saw it; returns why.
    @discardableResult
    func preambleFailed(_ reason: StreamError, _ error: (any Error)?, loop: Int) -> CloseReason {
        limit?.ended()
        let ending: CloseReason = switch (reason, error) {
        case (.timedOut, _): .handshakeTimeout
        case (_, is ProxyProtocolError): .proxyHeader
        case (.tlsFailed, _): .tls
        case (.closed, _), (.connectionReset, _): .peer
        default: .error
        }
        closed(ending, loop: loop)
        defer { logPreambleFailure(reason, error) }
        return ending
    }

    private func logPreambleFailure(_ reason: StreamError, _ error: (any Error)?) {
        switch (reason, error) {
        case (.timedOut, _):
            logger.info("connection closed: handshake_timeout_ms passed before its PROXY header or TLS handshake",
                        metadata: ["listener": "\(name)", "count": "\(total(.handshakeTimeout))"])
        case let (_, error as ProxyProtocolError):
            logger.info("connection closed: bad PROXY protocol header: \(error)",
                        metadata: ["listener": "\(name)", "count": "\(total(.proxyHeader))"])
        case (.tlsFailed, let error):
            let count = tlsHandshakeFailures.add(1, ordering: .relaxed).newValue
            logger.info("TLS handshake failed: \(error.map { "\($0)" } ?? "unknown")",
                        metadata: ["listener": "\(name)", "count": "\(count)"])
        default:
            // The client left during the preamble (EOF or reset): a non-event for operators.
            if awaiting.contains(.tlsHandshake), reason != .closed {
                tlsHandshakeFailures.add(1, ordering: .relaxed)
            }
        }
    }

    var hadFailures: Bool {
        tlsHandshakeFailures.load(ordering: .relaxed) + total(.proxyHeader) + total(.handshakeTimeout) > 0
    }

    var summary: String {
        "\(name): \(tlsHandshakeFailures.load(ordering: .relaxed)) TLS handshake failures, "
            + "\(total(.proxyHeader)) bad PROXY headers, \(total(.handshakeTimeout)) handshake timeouts"
    }
}

extension CloseReason {
    /// What ended an opened connection, from its close reason. A clean close (no reason)
    /// is the client's if its end of input came first (or a pumped relay ran to its end),
    /// else the plugin's.
    init(_ reason: StreamError?, peerEnded: Bool) {
        switch reason {
        case .idleTimeout: self = .idleTimeout
        case .readTimeout: self = .readTimeout
        case .lifetimeExceeded: self = .lifetime
        case .timedOut: self = .timeout
        case .shuttingDown: self = .drain
        case .connectionReset, .closed: self = .peer
        case .tlsFailed: self = .tls
        case .limitExceeded, .bufferFull, .writeBufferFull: self = .limit
        case nil: self = peerEnded ? .peer : .plugin
        default: self = .error
        }
    }
}
