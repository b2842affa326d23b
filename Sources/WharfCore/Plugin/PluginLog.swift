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
        return Unmanaged<PluginIdentity>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue().logger
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
