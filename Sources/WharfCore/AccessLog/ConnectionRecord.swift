import NIOCore

/// What the access log says about one accepted connection, filled in as it happens and
/// written once the connection and every upstream it opened have ended. Loop-confined.
final class ConnectionRecord {
    /// Wall-clock seconds since the epoch, and the loop clock, at accept.
    let acceptedAt: Double
    let acceptedAtUptime: NIODeadline
    var client: SocketAddress?
    /// What a PROXY header announced (the real client, behind a balancer).
    var announcedClient: SocketAddress?
    var local: SocketAddress?
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    var tlsVersion: UInt32 = 0
    var serverName: String?
    /// The last upstream a plugin connected for this connection.
    var upstream: String?
    var upstreamBytesIn: UInt64 = 0
    var upstreamBytesOut: UInt64 = 0
    var connectMicros: UInt64?
    var upstreamFailure: ConnectFailure?
    var reason: CloseReason?
    var phase: Phase = .accept
    var endedAt: NIODeadline?
    /// The connection itself plus each upstream still open or connecting: the line is
    /// written when this reaches zero.
    private var open = 1
    private let sink: ListenerAccessLog

    /// Where the connection was when it ended: the second letter of `termination`.
    enum Phase: Character {
        /// Refused at accept (allow/deny, max_connections with reject).
        case accept = "A"
        /// Before the plugin saw it: the PROXY header or the TLS handshake.
        case handshake = "H"
        /// Waiting for an upstream connect.
        case connect = "C"
        /// Open (serving or relayed).
        case data = "D"
    }

    init(sink: ListenerAccessLog, now: NIODeadline) {
        self.sink = sink
        acceptedAt = WallClock.now
        acceptedAtUptime = now
    }

    /// Upstream connects under way: a connection ending meanwhile ended in phase C.
    private var connecting = 0
    /// A connect was called off because the connection went: it too ended in phase C.
    private var leftWhileConnecting = false

    /// An upstream connect started for this connection: the line waits for its end.
    func upstreamStarted() {
        open += 1
        connecting += 1
    }

    func upstreamConnected(to address: SocketAddress?, micros: UInt64) {
        connecting -= 1
        upstream = AccessLogLine.address(address)
        connectMicros = micros
        upstreamFailure = nil
    }

    func upstreamFailed(_ failure: ConnectFailure) {
        connecting -= 1
        if upstream == nil { upstreamFailure = failure }
        partEnded()
    }

    /// An upstream connect was called off because the connection itself ended first (the
    /// relay hears of that before the connection's own end is recorded).
    func upstreamAbandoned() {
        connecting -= 1
        leftWhileConnecting = true
        partEnded()
    }

    /// A connected upstream closed, having moved these bytes.
    func upstreamClosed(received: UInt64, sent: UInt64) {
        upstreamBytesIn &+= received
        upstreamBytesOut &+= sent
        partEnded()
    }

    /// The connection itself ended: its side of the line. `phase`: where it was if it never
    /// opened (refused at accept, or in its handshake); an opened one was waiting for an
    /// upstream or past that.
    func connectionEnded(_ reason: CloseReason, before phase: Phase? = nil, received: UInt64 = 0, sent: UInt64 = 0,
                         now: NIODeadline) {
        self.reason = reason
        self.phase = phase ?? (connecting > 0 || leftWhileConnecting ? .connect : .data)
        bytesIn = received
        bytesOut = sent
        endedAt = now
        partEnded()
    }

    /// One part (the connection, or an upstream) is done; the last one writes the line.
    private func partEnded() {
        open -= 1
        if open == 0 { sink.write(self) }
    }

    /// The two letters HAProxy operators read: who or what ended the connection, and in
    /// which phase (see README, "Access log").
    var termination: String {
        // The plugin gave up on the client because no upstream could be reached.
        if reason == .plugin, upstream == nil, upstreamFailure != nil { return "SC" }
        let who: Character = switch reason {
        case .peer?: "C"
        case .plugin?: "P"
        case .idleTimeout?, .readTimeout?, .handshakeTimeout?: "c"
        case .timeout?: "p"
        case .lifetime?, .limit?, .rejected?, .clientLimit?, .clientRate?: "R"
        case .denied?: "D"
        case .tls?, .proxyHeader?: "H"
        case .drain?, .workerExit?: "K"
        case .error?, nil: "E"
        }
        return String([who, phase.rawValue])
    }
}
