// swift_fixture — exercises the WharfPlugin library's edges for the tests: read deadlines,
// Task.sleep resumed from a timer thread, and cancellation of a read. Each connection sends
// one command line:
//   deadline  a read with readTimeout 100 ms: answers "timed out" and stays open
//   race      a read raced against a 100 ms Task.sleep in a task group; the sleep wins, the
//             group cancels the read, and the connection is aborted
//   sleep     answers "slept" after a 50 ms Task.sleep
import WharfPlugin

final class SwiftFixture: SwiftPlugin {
    static let name = "swift_fixture"
    static let version = "1.0.0"
    static let summary = "WharfPlugin's edges (test fixture)"
    static let configKeys: [ConfigKey] = []

    init(config: PluginConfig) throws {}

    struct Late: Error {}

    func handle(_ stream: Stream) async throws {
        let command = String(decoding: try await stream.read(until: [10]).dropLast(), as: UTF8.self)
        switch command {
        case "deadline":
            stream.readTimeout = .milliseconds(100)
            do {
                _ = try await stream.read(until: [10])
            } catch let error as WharfError {
                try stream.write(Array("\(error)\n".utf8))
            }
            stream.readTimeout = nil
            try stream.write(try await stream.read(until: [10])) // still open: echoes the next line
        case "race":
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await stream.read(until: [10]) }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(100))
                    throw Late()
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        case "sleep":
            try await Task.sleep(for: .milliseconds(50))
            try stream.write(Array("slept\n".utf8))
        default:
            try stream.write(Array("unknown\n".utf8))
        }
    }
}

@_cdecl("wharf_plugin_v1")
public func wharfPluginEntry() -> UnsafeRawPointer { PluginExport.descriptor(for: SwiftFixture.self) }
