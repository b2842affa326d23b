/// Where each counter of a worker sits in its metrics segment. The supervisor and the
/// worker compute the same layout from the same config text, so neither has to describe
/// it to the other; the segment's header carries the dimensions as a check.
///
/// A segment is a header and `2 × event_loops` regions: each loop thread and its relay pump
/// thread write only their own region (one writer per counter: no locked instruction on the
/// data path), and the supervisor sums them. A region is one block per listener, one block
/// for the loop itself, then room for plugin metrics. After the regions: the plugin metrics'
/// descriptions, as text the worker writes once at startup.
public struct MetricsLayout: Equatable, Sendable {
    /// The labels of one listener's block.
    public struct ListenerLabels: Hashable, Sendable {
        public var listener: String
        public var plugin: String
    }

    public let listeners: [ListenerLabels]
    public let loops: Int

    public init(listeners: [ListenerLabels], loops: Int) {
        self.listeners = listeners
        self.loops = max(1, loops)
    }

    public init(_ config: GatewayConfig) {
        self.init(listeners: config.listeners.map { ListenerLabels(listener: $0.displayName, plugin: $0.plugin) },
                  loops: config.eventLoops)
    }

    static let magic: UInt64 = 0x5748_4152_464D_3031 // "WHARFM01"
    /// magic, listener count, loop count, region words, then process-wide words.
    static let headerWords = 4 + ProcessField.count

    /// Values plugins may register per loop (wharf.h: metric_register).
    static let pluginWords = 4096
    /// Room for the plugin metrics' descriptions.
    static let pluginTextBytes = 65536

    var regionCount: Int { loops * 2 }
    var regionWords: Int { listeners.count * ListenerField.count + LoopField.count + Self.pluginWords }
    /// The word holding how many bytes of plugin-metric descriptions are published.
    var pluginTextLengthWord: Int { Self.headerWords + regionCount * regionWords }
    var pluginTextByteOffset: Int { (pluginTextLengthWord + 1) * MemoryLayout<UInt64>.size }
    public var byteCount: Int { pluginTextByteOffset + Self.pluginTextBytes }

    /// The word offset of `region`'s block for listener `index`.
    func listenerOffset(region: Int, listener index: Int) -> Int {
        Self.headerWords + region * regionWords + index * ListenerField.count
    }

    func loopOffset(region: Int) -> Int {
        Self.headerWords + region * regionWords + listeners.count * ListenerField.count
    }

    /// The word offset of `region`'s plugin-metrics area.
    func pluginOffset(region: Int) -> Int { loopOffset(region: region) + LoopField.count }

    /// The event loop's own region; its relay pump writes the next one.
    static func loopRegion(_ loop: Int) -> Int { loop * 2 }
    static func pumpRegion(_ loop: Int) -> Int { loop * 2 + 1 }
}

/// Why a connection accepted by a listener ended: the `reason` label of
/// `wharf_connections_closed_total`.
public enum CloseReason: Int, CaseIterable, Sendable {
    /// The client closed or reset the connection.
    case peer
    /// The plugin closed it.
    case plugin
    case idleTimeout, readTimeout, lifetime
    /// A plugin's own deadline (a read deadline, a relay's idle timeout).
    case timeout
    /// No PROXY header or TLS handshake within handshake_timeout_ms.
    case handshakeTimeout
    case tls, proxyHeader
    /// A message over max_bytes, or the read buffer over max_buffer_size.
    case limit
    /// A socket error other than a reset.
    case error
    /// Closed by a drain (stop, reload) that ran out of time, or by a second stop.
    case drain
    /// `max_connections` with `on_limit: reject`.
    case rejected
    /// The listener's allow/deny list.
    case denied
    /// `per_client.max_connections`: the client had that many open already.
    case clientLimit
    /// `per_client.connections_per_second`: the client connected too often.
    case clientRate
    /// The worker process died with the connection open.
    case workerExit

    public var label: String {
        switch self {
        case .peer: "peer"
        case .plugin: "plugin"
        case .idleTimeout: "idle_timeout"
        case .readTimeout: "read_timeout"
        case .lifetime: "max_lifetime"
        case .timeout: "plugin_timeout"
        case .handshakeTimeout: "handshake_timeout"
        case .tls: "tls"
        case .proxyHeader: "proxy_header"
        case .limit: "limit"
        case .error: "error"
        case .drain: "drain"
        case .rejected: "rejected"
        case .denied: "denied"
        case .clientLimit: "client_limit"
        case .clientRate: "client_rate"
        case .workerExit: "worker_exit"
        }
    }
}

/// Why an upstream connect failed: the `reason` label of
/// `wharf_upstream_connect_failures_total`.
public enum ConnectFailure: Int, CaseIterable, Sendable {
    case refused, timeout, resolve, unreachable, tls, other

    public var label: String {
        switch self {
        case .refused: "refused"
        case .timeout: "timeout"
        case .resolve: "resolve"
        case .unreachable: "unreachable"
        case .tls: "tls"
        case .other: "other"
        }
    }

    init(_ error: StreamError) {
        switch error {
        case .refused: self = .refused
        case .timedOut: self = .timeout
        case .unresolved: self = .resolve
        case .unreachable: self = .unreachable
        case .tlsFailed: self = .tls
        default: self = .other
        }
    }
}

/// Which accept failure: the `errno` label of `wharf_accept_errors_total`.
public enum AcceptFailure: Int, CaseIterable, Sendable {
    case emfile, enfile, enobufs, enomem, other

    public var label: String {
        switch self {
        case .emfile: "EMFILE"
        case .enfile: "ENFILE"
        case .enobufs: "ENOBUFS"
        case .enomem: "ENOMEM"
        case .other: "other"
        }
    }
}

/// Fixed bucket bounds, in seconds. Stored as one count per bucket (not cumulative: a
/// record touches one word), then +Inf, then the sum in microseconds.
public struct HistogramShape: Sendable, Equatable {
    public let bounds: [Double]
    private let microBounds: [UInt64]

    init(_ bounds: [Double]) {
        self.bounds = bounds
        self.microBounds = bounds.map { UInt64($0 * 1_000_000) }
    }

    var words: Int { bounds.count + 2 }
    var sumWord: Int { bounds.count + 1 }

    /// The bucket a duration of `micros` microseconds falls in.
    func bucket(micros: UInt64) -> Int {
        for (index, bound) in microBounds.enumerated() where micros <= bound { return index }
        return microBounds.count
    }

    static let connectionDuration = HistogramShape([0.001, 0.01, 0.1, 1, 10, 60, 300, 1800, 3600])
    static let connectTime = HistogramShape([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5])
    static let loopLag = HistogramShape([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5])
    static let callbackDuration = HistogramShape([0.00001, 0.0001, 0.001, 0.01, 0.1, 1])
}

/// The words of one listener's block.
enum ListenerField {
    static let accepted = 0
    static let received = 1
    static let sent = 2
    static let upstreamReceived = 3
    static let upstreamSent = 4
    static let tlsHandshakes = 5
    static let upstreamConnects = 6
    static let closed = 7
    static let connectFailures = closed + CloseReason.allCases.count
    static let acceptErrors = connectFailures + ConnectFailure.allCases.count
    static let duration = acceptErrors + AcceptFailure.allCases.count
    static let connectTime = duration + HistogramShape.connectionDuration.words
    static let count = connectTime + HistogramShape.connectTime.words
}

/// The words of a loop's own block.
enum LoopField {
    static let lag = 0
    /// Each run of plugin callbacks (and the host work they start), start to end.
    static let callbacks = lag + HistogramShape.loopLag.words
    static let count = callbacks + HistogramShape.callbackDuration.words
}

/// Process-wide words in the header, which any thread may bump (atomically).
enum ProcessField {
    static let logLinesDropped = 0
    static let accessLogLinesDropped = 1
    static let count = 2
}
