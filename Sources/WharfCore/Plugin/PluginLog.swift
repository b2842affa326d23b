import CWharf
import Logging

/// What a `wharf_instance *` points to: the instance's name and its logger. Immutable,
/// so `log` is safe from any thread.
final class PluginIdentity: Sendable {
    let name: String
    let logger: Logger

    init(name: String, loopIndex: Int) {
        var logger = Logger(label: "wharf.plugin")
        logger[metadataKey: "plugin"] = "\(name)"
        logger[metadataKey: "loop"] = "\(loopIndex)"
        self.name = name
        self.logger = logger
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

    private static func identity(_ instance: OpaquePointer) -> PluginIdentity {
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
