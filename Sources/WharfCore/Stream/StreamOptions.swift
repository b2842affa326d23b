import NIOCore

/// The time limits on one connection. A nil limit is off.
public struct StreamTimeouts: Sendable, Equatable {
    /// No byte in either direction for this long closes the stream (`.idleTimeout`).
    public var idle: TimeAmount?
    /// A message that began arriving (a pending read with some of its bytes buffered) must
    /// complete within this, or the stream closes (`.readTimeout`): the slowloris guard.
    public var read: TimeAmount?
    /// The longest a connection may live (`.lifetimeExceeded`).
    public var lifetime: TimeAmount?
    /// The bound on the preamble (PROXY header, TLS handshake) and on start_tls.
    public var handshake: TimeAmount
    /// How long a graceful close may wait for pending writes to drain before it aborts.
    public var closeLinger: TimeAmount

    public init(idle: TimeAmount? = nil, read: TimeAmount? = nil, lifetime: TimeAmount? = nil,
                handshake: TimeAmount = .seconds(10), closeLinger: TimeAmount = .seconds(10)) {
        self.idle = idle
        self.read = read
        self.lifetime = lifetime
        self.handshake = handshake
        self.closeLinger = closeLinger
    }
}

/// TCP keepalive probes, so a peer that vanished without a FIN or RST is noticed.
public struct TCPKeepalive: Sendable, Equatable {
    public var idleSeconds: Int
    public var intervalSeconds: Int
    public var count: Int

    public init(idleSeconds: Int, intervalSeconds: Int, count: Int) {
        self.idleSeconds = idleSeconds
        self.intervalSeconds = intervalSeconds
        self.count = count
    }
}

/// Per-stream settings a listener (or an upstream connect) hands down.
public struct StreamOptions: Sendable {
    public var maxBufferSize: Int
    public var timeouts: StreamTimeouts
    /// For the stream's socket (an upstream connect inherits its origin's).
    public var keepalive: TCPKeepalive?
    /// Unsent bytes a write may leave queued (0: no limit): past it the write fails with
    /// `.writeBufferFull` and the stream closes (Tornado's max_write_buffer_size).
    public var maxWriteBufferSize: Int

    public init(maxBufferSize: Int = 104_857_600, timeouts: StreamTimeouts = StreamTimeouts(),
                keepalive: TCPKeepalive? = nil, maxWriteBufferSize: Int = 0) {
        self.maxBufferSize = maxBufferSize
        self.timeouts = timeouts
        self.keepalive = keepalive
        self.maxWriteBufferSize = maxWriteBufferSize
    }
}

/// What must finish on a new connection before its owner sees it.
public struct Preamble: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let proxyHeader = Preamble(rawValue: 1)
    public static let tlsHandshake = Preamble(rawValue: 2)
}

/// What the connection's preamble established.
public struct ConnectionFacts {
    /// Addresses announced by a PROXY protocol header.
    public var proxied: ProxyProtocolHeader?
    /// The SNI name the client asked for, or (outgoing) the one sent.
    public var serverName: String?
    public var tls: TLSFacts?
    /// The host an outgoing stream was connected to (start_tls's default server name).
    public var connectHost: String?
    /// The socket's addresses, kept when the socket goes to the pump and the channel closes.
    var detachedAddresses: (local: SocketAddress?, remote: SocketAddress?)?
}
