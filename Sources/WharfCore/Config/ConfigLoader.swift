import Logging
import NIOCore
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads and validates `wharf.yaml`. Every problem is a `ConfigError` naming file, line,
/// column and key path; nothing is defaulted silently except what the docs say.
public enum ConfigLoader {
    static let topLevelKeys = ["processes", "event_loops", "plugin_dirs", "plugins", "listeners", "drain_timeout_ms",
                               "log_level", "max_generations", "worker_stall_timeout_ms", "control_socket", "user",
                               "group", "admin", "access_log", "relay_pump_scheduling"]
    /// Keys of older releases, with what replaced them.
    static let renamedTopLevelKeys = [
        "workers": "use 'event_loops' (event-loop threads in each worker process); 'processes' is the number of "
            + "worker processes",
        "shutdown_grace_ms": "use 'drain_timeout_ms'",
    ]
    static let pluginKeys = ["path", "config"]
    static let listenerKeys = ["name", "address", "port", "plugin", "backlog", "reuse_port", "tcp_nodelay",
                               "max_buffer_size", "read_chunk_size", "fixed_read_chunks", "close_linger_ms",
                               "proxy_protocol", "tls", "handshake_timeout_ms", "idle_timeout_ms",
                               "read_timeout_ms", "max_lifetime_ms", "tcp_keepalive", "allow", "deny",
                               "max_connections", "on_limit", "access_log", "per_client", "max_write_buffer_size",
                               "pump_accept"]
    static let keepaliveKeys = ["idle_s", "interval_s", "count"]
    static let adminKeys = ["address", "port", "allow", "deny"]
    static let accessLogKeys = ["path", "format"]
    static let perClientKeys = ["max_connections", "connections_per_second", "burst", "table_size"]

    /// The named file, or the embedded default (what `wharf run` without --config serves).
    public static func load(fileOrDefault path: String?) throws(ConfigError) -> GatewayConfig {
        guard let path else { return try parse(DefaultConfig.text, file: DefaultConfig.fileName) }
        return try load(file: path)
    }

    public static func load(file path: String) throws(ConfigError) -> GatewayConfig {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            throw ConfigError(SourceLocation(file: path, line: 0, column: 0), "", "cannot read: \(error)")
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        return try parse(text, file: path, baseDirectory: directory.isEmpty ? "/" : directory)
    }

    public static func parse(_ text: String, file: String, baseDirectory: String = ".") throws(ConfigError) -> GatewayConfig {
        let reader = YAMLReader(file: file)
        guard let root = try reader.compose(text) else {
            throw ConfigError(SourceLocation(file: file, line: 1, column: 1), "", "the file is empty")
        }
        var config = GatewayConfig(source: file, baseDirectory: baseDirectory, text: text)
        var pluginsNode: Node?
        var listenersNode: Node?
        var eventLoops: Int?
        for (key, node) in try reader.mapping(root, "", allowed: topLevelKeys, renamed: renamedTopLevelKeys) {
            switch key {
            case "processes": config.processes = try processes(node, reader: reader)
            case "event_loops": eventLoops = try reader.int(node, key, in: 1...256)
            case "plugin_dirs": config.pluginDirectories = try reader.stringList(node, key)
            case "drain_timeout_ms": config.drainTimeoutMilliseconds = try reader.int(node, key, in: 0...86_400_000)
            case "log_level": config.logLevel = try logLevel(node, reader: reader)
            case "max_generations": config.maxGenerations = try reader.int(node, key, in: 2...64)
            case "worker_stall_timeout_ms":
                config.workerStallTimeoutMilliseconds = try reader.int(node, key, in: 0...3_600_000)
            case "control_socket": config.controlSocket = try reader.string(node, key)
            case "user": config.user = try account(node, key, reader: reader, exists: { getpwnam($0) != nil })
            case "group": config.group = try account(node, key, reader: reader, exists: { getgrnam($0) != nil })
            case "admin": config.admin = try admin(node, reader: reader)
            case "access_log": config.accessLog = try accessLog(node, reader: reader, baseDirectory: baseDirectory)
            case "relay_pump_scheduling": config.relayPumpScheduling = try pumpScheduling(node, reader: reader)
            case "plugins": pluginsNode = node
            default: listenersNode = node
            }
        }
        guard let pluginsNode else { throw reader.fail(root, "", "missing required key 'plugins'") }
        guard let listenersNode else { throw reader.fail(root, "", "missing required key 'listeners'") }
        config.plugins = try parsePlugins(pluginsNode, reader: reader)
        config.listeners = try parseListeners(listenersNode, reader: reader, plugins: config.plugins,
                                              baseDirectory: baseDirectory)
        config.eventLoops = eventLoops ?? max(1, System.coreCountClamped / config.processes)
        if let socket = config.controlSocket, !socket.hasPrefix("/") {
            config.controlSocket = baseDirectory + "/" + socket
        }
        return config
    }

    /// `admin: {address, port, allow, deny}`: the supervisor's HTTP endpoint.
    private static func admin(_ node: Node, reader: YAMLReader) throws(ConfigError) -> AdminConfig {
        var admin = AdminConfig(location: reader.location(of: node))
        for (key, value) in try reader.mapping(node, "admin", allowed: adminKeys) {
            let keyPath = "admin.\(key)"
            switch key {
            case "address": admin.address = try address(value, keyPath, reader: reader)
            case "port": admin.port = try reader.int(value, keyPath, in: 0...65535, what: "an integer 0-65535 (0: any free port)")
            case "allow": admin.access.allow = try networks(value, keyPath, reader: reader)
            default: admin.access.deny = try networks(value, keyPath, reader: reader)
            }
        }
        return admin
    }

    /// A listener's `per_client: {max_connections, connections_per_second, burst, table_size}`.
    private static func perClient(_ node: Node, _ path: String, reader: YAMLReader) throws(ConfigError) -> ClientLimits {
        var limits = ClientLimits()
        var burst: Int?
        for (key, value) in try reader.mapping(node, path, allowed: perClientKeys) {
            let keyPath = "\(path).\(key)"
            switch key {
            case "max_connections": limits.maxConnections = try reader.int(value, keyPath, in: 0...1_000_000)
            case "connections_per_second": limits.connectionsPerSecond = try reader.int(value, keyPath, in: 0...1_000_000)
            case "burst": burst = try reader.int(value, keyPath, in: 1...1_000_000)
            default: limits.tableSize = try reader.int(value, keyPath, in: 64...4_194_304)
            }
        }
        limits.burst = burst ?? max(1, limits.connectionsPerSecond)
        return limits
    }

    /// `access_log: {path, format}`: one line per connection, to a file or standard error.
    private static func accessLog(_ node: Node, reader: YAMLReader, baseDirectory: String) throws(ConfigError)
        -> AccessLogConfig {
        var log = AccessLogConfig()
        for (key, value) in try reader.mapping(node, "access_log", allowed: accessLogKeys) {
            let keyPath = "access_log.\(key)"
            if key == "path" {
                let path = try reader.string(value, keyPath)
                guard !path.isEmpty else { throw reader.fail(value, keyPath, "expected a file path or stderr") }
                log.path = path == "stderr" ? nil : (path.hasPrefix("/") ? path : baseDirectory + "/" + path)
            } else {
                let name = try reader.string(value, keyPath)
                guard let format = AccessLogConfig.Format(rawValue: name) else {
                    throw reader.fail(value, keyPath, "expected json or logfmt, got \"\(name)\"")
                }
                log.format = format
            }
        }
        return log
    }

    /// A user or group name that exists on this machine.
    private static func account(_ node: Node, _ key: String, reader: YAMLReader,
                                exists: (String) -> Bool) throws(ConfigError) -> String {
        let name = try reader.string(node, key)
        guard exists(name) else { throw reader.fail(node, key, "no \(key) named '\(name)' on this machine") }
        return name
    }

    /// `processes: N` or `auto` (one per core).
    private static func processes(_ node: Node, reader: YAMLReader) throws(ConfigError) -> Int {
        if node.scalar?.string == "auto" { return System.coreCountClamped }
        return try reader.int(node, "processes", in: 1...256, what: "an integer 1-256 or auto")
    }

    private static func logLevel(_ node: Node, reader: YAMLReader) throws(ConfigError) -> Logger.Level {
        let text = try reader.string(node, "log_level")
        guard let level = Logger.Level(rawValue: text) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw reader.fail(node, "log_level", "expected one of \(names), got \"\(text)\"")
        }
        return level
    }

    private static func pumpScheduling(_ node: Node, reader: YAMLReader) throws(ConfigError) -> PumpScheduling {
        let text = try reader.string(node, "relay_pump_scheduling")
        guard let scheduling = PumpScheduling(rawValue: text) else {
            throw reader.fail(node, "relay_pump_scheduling", "expected auto, batch or normal, got \"\(text)\"")
        }
        return scheduling
    }

    private static func parsePlugins(_ node: Node, reader: YAMLReader) throws(ConfigError) -> [PluginInstanceConfig] {
        var plugins: [PluginInstanceConfig] = []
        for (name, body) in try reader.mapping(node, "plugins", allowed: []) {
            let path = "plugins.\(name)"
            var libraryPath: String?
            var configNode: Node?
            for (key, value) in try reader.mapping(body, path, allowed: pluginKeys) {
                if key == "path" { libraryPath = try reader.string(value, "\(path).path") } else { configNode = value }
            }
            guard let libraryPath else { throw reader.fail(body, path, "missing required key 'path'") }
            let tree = try configNode.map { node throws(ConfigError) in
                try ConfigTree.make(node, reader: reader, path: "\(path).config")
            }
            plugins.append(PluginInstanceConfig(name: name, path: libraryPath, location: reader.location(of: body),
                                                configLocation: reader.location(of: configNode ?? body), config: tree))
        }
        if plugins.isEmpty { throw reader.fail(node, "plugins", "no plugin instances defined") }
        return plugins
    }

    private static func parseListeners(_ node: Node, reader: YAMLReader, plugins: [PluginInstanceConfig],
                                       baseDirectory: String) throws(ConfigError) -> [ListenerConfig] {
        guard case let .sequence(sequence) = node else {
            throw reader.fail(node, "listeners", "expected a list of listeners, got \(reader.describe(node))")
        }
        if sequence.isEmpty { throw reader.fail(node, "listeners", "no listeners defined: nothing to serve") }
        var listeners: [ListenerConfig] = []
        var claimed: [String: (index: Int, line: Int)] = [:]
        for (index, item) in sequence.enumerated() {
            let path = "listeners[\(index)]"
            var listener = ListenerConfig(name: nil, address: "0.0.0.0", port: -1, plugin: "", backlog: 511,
                                          reusePort: false, tcpNoDelay: true, maxBufferSize: 104_857_600,
                                          readChunkSize: 65536, fixedReadChunks: false,
                                          closeLingerMilliseconds: 10_000, proxyProtocolAccept: false,
                                          handshakeTimeoutMilliseconds: 10_000, idleTimeoutMilliseconds: 300_000,
                                          readTimeoutMilliseconds: 60_000, maxLifetimeMilliseconds: 0,
                                          keepalive: ListenerConfig.defaultKeepalive, tls: nil,
                                          location: reader.location(of: item))
            var pluginNode: Node?
            for (key, value) in try reader.mapping(item, path, allowed: listenerKeys) {
                let keyPath = "\(path).\(key)"
                switch key {
                case "name": listener.name = try reader.string(value, keyPath)
                case "address": listener.address = try address(value, keyPath, reader: reader)
                case "port": listener.port = try reader.int(value, keyPath, in: 0...65535,
                                                            what: "an integer 0-65535 (0: any free port)")
                case "plugin":
                    listener.plugin = try reader.string(value, keyPath)
                    pluginNode = value
                case "backlog": listener.backlog = try reader.int(value, keyPath, in: 1...65535)
                case "reuse_port": listener.reusePort = try reader.bool(value, keyPath)
                case "tcp_nodelay": listener.tcpNoDelay = try reader.bool(value, keyPath)
                case "pump_accept": listener.pumpAccept = try reader.bool(value, keyPath)
                case "max_buffer_size": listener.maxBufferSize = try reader.int(value, keyPath, in: 2...(1 << 40))
                case "max_write_buffer_size":
                    listener.maxWriteBufferSize = try reader.int(value, keyPath, in: 0...(1 << 40))
                case "read_chunk_size": listener.readChunkSize = try reader.int(value, keyPath, in: 1...(16 << 20))
                case "fixed_read_chunks": listener.fixedReadChunks = try reader.bool(value, keyPath)
                case "proxy_protocol":
                    let mode = try reader.string(value, keyPath)
                    guard mode == "accept" || mode == "off" else {
                        throw reader.fail(value, keyPath, "expected accept or off, got \"\(mode)\"")
                    }
                    listener.proxyProtocolAccept = mode == "accept"
                case "tls":
                    listener.tls = try ServerTLSLoader.load(value, keyPath, reader: reader, baseDirectory: baseDirectory)
                case "handshake_timeout_ms":
                    listener.handshakeTimeoutMilliseconds = try reader.int(value, keyPath, in: 1...3_600_000)
                case "idle_timeout_ms":
                    listener.idleTimeoutMilliseconds = try reader.int(value, keyPath, in: 0...86_400_000)
                case "read_timeout_ms":
                    listener.readTimeoutMilliseconds = try reader.int(value, keyPath, in: 0...86_400_000)
                case "max_lifetime_ms":
                    listener.maxLifetimeMilliseconds = try reader.int(value, keyPath, in: 0...(365 * 86_400_000))
                case "tcp_keepalive": listener.keepalive = try keepalive(value, keyPath, reader: reader)
                case "max_connections": listener.maxConnections = try reader.int(value, keyPath, in: 0...10_000_000)
                case "on_limit":
                    let mode = try reader.string(value, keyPath)
                    guard mode == "queue" || mode == "reject" else {
                        throw reader.fail(value, keyPath, "expected queue or reject, got \"\(mode)\"")
                    }
                    listener.rejectOverLimit = mode == "reject"
                case "access_log": listener.accessLog = try reader.bool(value, keyPath)
                case "per_client": listener.perClient = try perClient(value, keyPath, reader: reader)
                case "allow": listener.access.allow = try networks(value, keyPath, reader: reader)
                case "deny": listener.access.deny = try networks(value, keyPath, reader: reader)
                default: listener.closeLingerMilliseconds = try reader.int(value, keyPath, in: 0...3_600_000)
                }
            }
            if listener.port < 0 { throw reader.fail(item, path, "missing required key 'port'") }
            guard let pluginNode else { throw reader.fail(item, path, "missing required key 'plugin'") }
            if !plugins.contains(where: { $0.name == listener.plugin }) {
                let defined = plugins.map(\.name).joined(separator: ", ")
                throw reader.fail(pluginNode, "\(path).plugin",
                                  "no plugin instance named '\(listener.plugin)' (defined: \(defined))")
            }
            if listener.port != 0 {
                let endpoint = "\(listener.address):\(listener.port)"
                if let earlier = claimed[endpoint] {
                    throw reader.fail(item, path, "\(endpoint) is already used by listeners[\(earlier.index)] "
                        + "(line \(earlier.line))")
                }
                claimed[endpoint] = (index, listener.location.line)
            }
            listeners.append(listener)
        }
        return listeners
    }

    /// A list of addresses and CIDR networks.
    private static func networks(_ node: Node, _ path: String, reader: YAMLReader) throws(ConfigError) -> [CIDR] {
        guard case let .sequence(items) = node else {
            throw reader.fail(node, path, "expected a list of addresses or networks, got \(reader.describe(node))")
        }
        var networks: [CIDR] = []
        for (index, item) in items.enumerated() {
            let text = try reader.string(item, "\(path)[\(index)]")
            guard let network = CIDR(text) else {
                throw reader.fail(item, "\(path)[\(index)]", "expected an address or a network like 10.0.0.0/8 or "
                    + "2001:db8::/32, got \"\(text)\"")
            }
            networks.append(network)
        }
        return networks
    }

    /// `tcp_keepalive: off`, or `{idle_s, interval_s, count}` (each optional).
    private static func keepalive(_ node: Node, _ path: String, reader: YAMLReader) throws(ConfigError) -> TCPKeepalive? {
        if node.scalar != nil {
            if node.scalar?.string == "off" { return nil }
            return try reader.bool(node, path) ? ListenerConfig.defaultKeepalive : nil
        }
        var keepalive = ListenerConfig.defaultKeepalive
        for (key, value) in try reader.mapping(node, path, allowed: keepaliveKeys) {
            let keyPath = "\(path).\(key)"
            switch key {
            case "idle_s": keepalive.idleSeconds = try reader.int(value, keyPath, in: 1...32767)
            case "interval_s": keepalive.intervalSeconds = try reader.int(value, keyPath, in: 1...32767)
            default: keepalive.count = try reader.int(value, keyPath, in: 1...127)
            }
        }
        return keepalive
    }

    private static func address(_ node: Node, _ path: String, reader: YAMLReader) throws(ConfigError) -> String {
        let text = try reader.string(node, path)
        var storage = in6_addr()
        let isIP = inet_pton(AF_INET, text, &storage) == 1 || inet_pton(AF_INET6, text, &storage) == 1
        let hostnameBytes = Array(text.utf8)
        let isHostname = hostnameBytes.count <= 253 && hostnameBytes.allSatisfy {
            ByteSet.word.contains($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
        } && !text.hasPrefix(".") && !text.hasPrefix("-")
        guard isIP || isHostname else {
            throw reader.fail(node, path, "expected an IPv4 or IPv6 address or a hostname, got \"\(text)\"")
        }
        return text
    }

    /// A config is a few KiB; anything this big is a mistake.
    static let maximumFileSize = 4 << 20

    /// A regular file of at most `maximumFileSize`: a device (/dev/zero) or a FIFO is refused
    /// before it is read, not read until memory runs out or forever.
    private static func readFile(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw FileError(message: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw FileError(message: "not a regular file") }
        guard let file = fopen(path, "rb") else {
            throw FileError(message: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[..<count]) }
            if bytes.count > maximumFileSize {
                throw FileError(message: "larger than \(maximumFileSize >> 20) MiB; is this a config file?")
            }
            if count < chunk.count {
                if ferror(file) != 0 { throw FileError(message: String(cString: strerror(errno))) }
                break
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FileError(message: "not UTF-8 text")
        }
        return text
    }

    struct FileError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

extension System {
    /// Event loops by default: one per core.
    static var coreCountClamped: Int { max(1, min(System.coreCount, 256)) }
}
