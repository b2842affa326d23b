import CWharf
import Logging

/// What a `wharf_instance *` points to: the instance's name and its logger (immutable, so
/// `log` is safe from any thread), and what metric_register needs while init runs.
final class PluginIdentity: @unchecked Sendable {
    let name: String
    let logger: Logger
    let loopIndex: Int
    /// Where metric_register puts metrics; nil: they record nothing (validate mode).
    let metrics: PluginMetricsRegistry?
    /// init() is running (on the thread that builds the generation): metric_register is
    /// allowed. Touched by that thread only.
    var initializing = false
    /// The handles given out, kept as long as the instance.
    var metricHandles: [PluginMetric] = []
    /// The checked config (plugins with a schema), for the config_* accessors, and the
    /// schema's key names (an absent optional key is WHARF_E_ABSENT, an unknown one INVALID).
    var config: PluginConfigStore?
    var configKeys: Set<String> = []

    init(name: String, loopIndex: Int, metrics: PluginMetricsRegistry? = nil) {
        var logger = Logger(label: "wharf.plugin")
        logger[metadataKey: "plugin"] = "\(name)"
        logger[metadataKey: "loop"] = "\(loopIndex)"
        self.name = name
        self.logger = logger
        self.loopIndex = loopIndex
        self.metrics = metrics
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
}

enum PluginLog {
    static let anonymous = Logger(label: "wharf.plugin")

    static func logger(for instance: OpaquePointer?) -> Logger {
        guard let instance else { return anonymous }
        return identity(instance).logger
    }

    /// A plugin's line is tagged with its instance name where a host line names its module,
    /// so `[fixture]` says whose line it is (`[plugin]` when no instance was given).
    static func log(_ text: String, level: Int32, instance: OpaquePointer?) {
        logger(for: instance).log(level: Self.level(level), "\(text)",
                                  source: instance.map { identity($0).name } ?? "plugin")
    }

    static func identity(_ instance: OpaquePointer) -> PluginIdentity {
        Unmanaged<PluginIdentity>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
    }

    static func level(_ level: Int32) -> Logger.Level {
        switch level {
        case ...WHARF_LOG_TRACE: .trace
        case WHARF_LOG_DEBUG: .debug
        case WHARF_LOG_INFO: .info
        case WHARF_LOG_WARNING: .warning
        default: .error
        }
    }
}
