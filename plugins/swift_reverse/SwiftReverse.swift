// swift_reverse — the Tornado tutorial's server as a Swift plugin, in the seed's own shape:
//
//     while True:
//         data = yield stream.read_bytes(20, partial=True)
//         yield stream.write(data); yield stream.write(data[::-1])
//         if data == b"over": stream.close()
//
// It behaves byte for byte like plugins/reverse (same config key).
import WharfPlugin

final class SwiftReverse: SwiftPlugin {
    static let name = "swift_reverse"
    static let version = "1.0.0"
    static let summary = "Echoes each chunk of up to 20 bytes, then it reversed; 'over' ends (Swift, async)"
    static let configKeys = [
        ConfigKey(name: "chunk_size", type: .integer, min: 1, max: 4096, default: "20",
                  summary: "the most bytes answered at a time (read_bytes partial)"),
    ]

    let chunkSize: Int

    init(config: PluginConfig) throws {
        chunkSize = try config.integer("chunk_size")
    }

    func handle(_ stream: Stream) async throws {
        for try await chunk in stream.chunks(upTo: chunkSize) {
            try stream.write(chunk)
            try stream.write(chunk.reversed())
            if chunk == Array("over".utf8) { return } // the stream closes gracefully
        }
    }
}

@_cdecl("wharf_plugin_v1")
public func wharfPluginEntry() -> UnsafeRawPointer { PluginExport.descriptor(for: SwiftReverse.self) }
