// swift_echo — the line echo (plugins/echo) as a Swift plugin: byte for byte alike, same
// config key.
import WharfPlugin

final class SwiftEcho: SwiftPlugin {
    static let name = "swift_echo"
    static let version = "1.0.0"
    static let summary = "Line echo: writes every \\n-terminated line back (Swift, async)"
    static let configKeys = [
        ConfigKey(name: "max_bytes", type: .size, min: 1, max: 1 << 40, default: "65536",
                  summary: "the longest line, its newline included; a longer one closes the connection"),
    ]

    let maxBytes: Int

    init(config: PluginConfig) throws {
        maxBytes = try config.integer("max_bytes")
    }

    func handle(_ stream: Stream) async throws {
        while true {
            try stream.write(try await stream.read(until: [10], maxBytes: maxBytes))
        }
    }
}

@_cdecl("wharf_plugin_v1")
public func wharfPluginEntry() -> UnsafeRawPointer { PluginExport.descriptor(for: SwiftEcho.self) }
