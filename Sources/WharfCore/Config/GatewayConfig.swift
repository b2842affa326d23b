import Logging
import NIOCore

/// A position in a config file, for error messages.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public var description: String { "\(file):\(line):\(column)" }
}

/// A config problem: where, which key, what is wrong. Printed as
/// `wharf.yaml:12:11: listeners[1].port: expected an integer 0-65535, got "eighty"`.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var keyPath: String
    public var message: String

    public init(_ location: SourceLocation, _ keyPath: String, _ message: String) {
        self.location = location
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        keyPath.isEmpty ? "\(location): \(message)" : "\(location): \(keyPath): \(message)"
    }
}

/// The validated gateway configuration (`wharf.yaml`).
public struct GatewayConfig: Sendable {
    public var source: String
    /// The folder relative plugin paths and plugin_dirs are resolved against.
    public var baseDirectory: String
    /// The text this was parsed from: a worker process gets exactly this, never a newer
    /// version of the file on disk.
    public var text: String
    /// Worker processes (each with its own event loops and plugin instances).
    public var processes = 1
    /// Event-loop threads in each worker process.
    public var eventLoops = 1
    public var pluginDirectories: [String] = []
    /// How long a stopping or replaced worker lets busy connections finish.
    public var drainTimeoutMilliseconds = 5000
    public var logLevel: Logger.Level = .info
    /// Generations alive at once (the serving one plus those draining); past it, the
    /// oldest draining one is closed at once.
    public var maxGenerations = 4
    /// A worker whose event loops stop answering for this long is killed and replaced
    /// (0: never).
    public var workerStallTimeoutMilliseconds = 10_000
    /// How the kernel schedules the relay pump threads (`PumpScheduling`).
    public var relayPumpScheduling = PumpScheduling.auto
    /// The Unix socket `wharf reload` talks to (absolute, or relative to the config file).
    public var controlSocket: String?
    /// Worker processes switch to this user and group before loading any plugin; the
    /// supervisor keeps its privileges to bind new listeners on reload.
    public var user: String?
    public var group: String?
    public var plugins: [PluginInstanceConfig] = []
    public var listeners: [ListenerConfig] = []
    /// The supervisor's HTTP endpoint (health, metrics, status, reload); nil: none.
    public var admin: AdminConfig?
    /// One line per connection (listeners may opt out); nil: none.
    public var accessLog: AccessLogConfig?

    public init(source: String, baseDirectory: String, text: String) {
        self.source = source
        self.baseDirectory = baseDirectory
        self.text = text
    }

    public func plugin(named name: String) -> PluginInstanceConfig? {
        plugins.first { $0.name == name }
    }
}

public struct PluginInstanceConfig: Sendable {
    public var name: String
    /// A bare name (`echo` → `libecho.so`) or a path to a shared library.
    public var path: String
    public var location: SourceLocation
    /// Where its `config:` value is (the instance's own entry without one).
    public var configLocation: SourceLocation
    /// The `config:` value itself (nil: none given).
    public var config: ConfigTree?

    /// The `config:` subtree as JSON text, as a plugin without a schema receives it.
    public var configJSON: String { config?.json ?? "{}" }
}

public struct ListenerConfig: Sendable {
    public var name: String?
    public var address: String
    public var port: Int
    public var plugin: String
    public var backlog: Int
    public var reusePort: Bool
    public var tcpNoDelay: Bool
    /// Let the relay pump accept when the plugin relays at once (WHARF_PLUGIN_RELAYS_AT_ONCE;
    /// see `PumpAcceptor`); false: a listening channel always does.
    public var pumpAccept = true
    public var maxBufferSize: Int
    /// See `StreamOptions.maxWriteBufferSize` (0: no limit).
    public var maxWriteBufferSize = 0
    public var readChunkSize: Int
    /// Every socket read asks for read_chunk_size bytes, as Tornado does (exact chunk
    /// boundaries, at read_chunk_size of memory per connection); otherwise reads adapt.
    public var fixedReadChunks: Bool
    public var closeLingerMilliseconds: Int
    /// Read a PROXY protocol v1/v2 header first (a load balancer in front announces the
    /// real client); without one the connection is closed.
    public var proxyProtocolAccept: Bool
    /// The PROXY header and the TLS handshake must be done within this, or the connection
    /// is closed before the plugin sees it.
    public var handshakeTimeoutMilliseconds: Int
    /// 0 turns each of these off; see `streamOptions` and etc/wharf.example.yaml.
    public var idleTimeoutMilliseconds: Int
    public var readTimeoutMilliseconds: Int
    public var maxLifetimeMilliseconds: Int
    public var keepalive: TCPKeepalive?
    /// `max_connections` (0: no limit), shared out over the worker processes; past it new
    /// connections wait in the backlog, or with `on_limit: reject` are closed at once.
    public var maxConnections = 0
    public var rejectOverLimit = false
    /// Write this listener's connections to the access log (when there is one).
    public var accessLog = true
    /// Limits per client address, over all worker processes.
    public var perClient = ClientLimits()
    /// `allow` / `deny`: which clients may connect at all.
    public var access = AccessList()
    public var tls: ServerTLS?
    public var location: SourceLocation

    /// Tornado clips the socket read size to half the buffer limit; so do we.
    public var effectiveReadChunkSize: Int { max(1, min(readChunkSize, maxBufferSize / 2)) }

    public var displayName: String { name ?? "\(address):\(port)" }

    /// A vanished peer is noticed after about idle + interval × count: 2 minutes.
    public static let defaultKeepalive = TCPKeepalive(idleSeconds: 60, intervalSeconds: 10, count: 6)

    /// What every stream accepted on this listener gets.
    public var streamOptions: StreamOptions {
        func limit(_ milliseconds: Int) -> TimeAmount? { milliseconds > 0 ? .milliseconds(Int64(milliseconds)) : nil }
        let timeouts = StreamTimeouts(idle: limit(idleTimeoutMilliseconds), read: limit(readTimeoutMilliseconds),
                                      lifetime: limit(maxLifetimeMilliseconds),
                                      handshake: .milliseconds(Int64(handshakeTimeoutMilliseconds)),
                                      closeLinger: .milliseconds(Int64(closeLingerMilliseconds)))
        return StreamOptions(maxBufferSize: maxBufferSize, timeouts: timeouts, keepalive: keepalive,
                             maxWriteBufferSize: maxWriteBufferSize)
    }
}

/// `admin:` — where the supervisor serves /healthz, /readyz, /metrics, /status, /reload and
/// the status page. Loopback unless the operator names another address.
public struct AdminConfig: Sendable, Equatable {
    public var address = "127.0.0.1"
    public var port = 9901
    /// Who may ask (the admin endpoint can reload: on a non-loopback address, restrict it).
    public var access = AccessList()
    public var location: SourceLocation

    public var endpoint: String { Endpoint.text(address, port) }
}

/// `access_log:` — where each worker writes one line per connection.
public struct AccessLogConfig: Sendable, Equatable {
    public enum Format: String, Sendable {
        case json, logfmt
    }

    /// nil: standard error.
    public var path: String?
    public var format = Format.json
}
