// swift_separator_echo — pulsar's echo example (plugins/separator_echo) as a Swift plugin:
// byte for byte alike, same config keys.
import WharfPlugin

final class SwiftSeparatorEcho: SwiftPlugin {
    static let name = "swift_separator_echo"
    static let version = "1.0.0"
    static let summary = "Echoes separator-terminated messages; QUIT closes (Swift, async)"
    static let configKeys = [
        ConfigKey(name: "separator", type: .bytes, min: 1, max: 64, default: "\"\\r\\n\\r\\n\"",
                  summary: "the end of each message"),
        ConfigKey(name: "max_bytes", type: .size, min: 1, max: 1 << 40, default: "1MiB",
                  summary: "the longest message, its separator included; a longer one closes the connection"),
    ]

    let separator: [UInt8]
    let maxBytes: Int

    init(config: PluginConfig) throws {
        separator = try config.bytes("separator")
        maxBytes = try config.integer("max_bytes")
    }

    func handle(_ stream: Stream) async throws {
        while true {
            let message = try await stream.read(until: separator, maxBytes: maxBytes)
            try stream.write(message)
            if message.count == separator.count + 4, message.starts(with: Array("QUIT".utf8)) { return }
        }
    }
}

@_cdecl("wharf_plugin_v1")
public func wharfPluginEntry() -> UnsafeRawPointer { PluginExport.descriptor(for: SwiftSeparatorEcho.self) }
