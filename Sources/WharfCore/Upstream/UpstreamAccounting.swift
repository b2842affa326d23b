import NIOCore

/// What an upstream connect made for a client connection is counted as: the listener's
/// connect counters and connect time, and the connection's access-log line. Shared by
/// upstream streams (`PluginStream`) and channel-less upstreams (`UpstreamRelay`).
struct UpstreamAccounting {
    let counters: CounterBlock?
    let record: ConnectionRecord?
    private let startedAt: NIODeadline

    /// Counts the connect as begun.
    init(counters: CounterBlock?, record: ConnectionRecord?, now: NIODeadline) {
        self.counters = counters
        self.record = record
        startedAt = now
        counters?.add(ListenerField.upstreamConnects)
        record?.upstreamStarted()
    }

    /// Connected: the byte meter for the upstream's side, if counted.
    func connected(to address: SocketAddress?, now: NIODeadline) -> ByteMeter? {
        let micros = UInt64(max(0, (now - startedAt).nanoseconds) / 1000)
        record?.upstreamConnected(to: address, micros: micros)
        guard let counters else { return nil }
        counters.record(.connectTime, at: ListenerField.connectTime, micros: micros)
        return ByteMeter(counters, upstream: true)
    }

    func failed(_ reason: StreamError) {
        counters?.add(ListenerField.connectFailures + ConnectFailure(reason).rawValue)
        record?.upstreamFailed(ConnectFailure(reason))
    }

    /// The client went away first, so the connect was called off: not the upstream's failure.
    func abandoned() {
        record?.upstreamAbandoned()
    }

    func closed(received: UInt64, sent: UInt64) {
        record?.upstreamClosed(received: received, sent: sent)
    }
}
