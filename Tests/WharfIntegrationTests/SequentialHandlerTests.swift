import Foundation
import Testing
import WharfTestSupport

/// include/wharf_seq.h: a C handler written as a sequence of awaits (plugins/reverse is the
/// seed's loop written so; the seed tests cover it). This fixture uses every await.
@Suite struct SequentialHandlerTests {
    func start() throws -> RunningWharf {
        let library = try FixturePlugins.build("seq_steps", source: "seq_steps")
        return try RunningWharf(config: gatewayConfig(plugins: "  steps: {path: \(library)}\n", listeners: ["steps"]))
    }

    @Test func everyAwaitResumesWhereItStopped() throws {
        let wharf = try start()
        let client = try TestSocket(port: try wharf.port("steps"))
        #expect(try client.receiveLine() == "name?\n")
        let asked = Date()
        try client.send("ada\n")
        #expect(try client.receiveLine() == "hello, ada\n", "the name outlived the awaits after it")
        #expect(Date().timeIntervalSince(asked) >= 0.045, "the sleep was awaited")
        try client.send("abc")
        client.shutdownWrite()
        #expect(String(decoding: try client.receiveUntilClose().bytes, as: UTF8.self) == "bye after 3 bytes\n")
    }

    @Test func aFailedAwaitEndsTheTaskAndTheHostClosesTheStream() throws {
        let wharf = try start()
        let clients = try (0..<50).map { _ in try TestSocket(port: try wharf.port("steps")) }
        for client in clients {
            #expect(try client.receiveLine() == "name?\n")
            try client.send(String(repeating: "n", count: 100) + "\n") // over the 64-byte read
        }
        for client in clients { #expect(client.isClosedByPeer()) }
        #expect(wharf.stop() == 0, "the tasks ended with their streams; the daemon stops cleanly")
    }
}
