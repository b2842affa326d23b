import Foundation
import Testing
import WharfTestSupport

/// The seed services as Swift async plugins (the WharfPlugin library) behave byte for byte
/// like the C ones, over real sockets, with many connections at once on each loop.
@Suite struct SwiftPluginTests {
    static let config = gatewayConfig(plugins: """
          echo: {path: echo, config: {max_bytes: 64}}
          swift_echo: {path: swift_echo, config: {max_bytes: 64}}
          reverse: {path: reverse}
          swift_reverse: {path: swift_reverse}
          separator_echo: {path: separator_echo}
          swift_separator_echo: {path: swift_separator_echo}

        """, listeners: ["echo", "swift_echo", "reverse", "swift_reverse", "separator_echo", "swift_separator_echo"],
        extra: "event_loops: 2\n")

    /// What `plugin` answers to `input` sent in one go, then a half-close.
    static func exchange(_ wharf: RunningWharf, _ plugin: String, _ input: [UInt8]) throws -> (bytes: [UInt8], reset: Bool) {
        let client = try TestSocket(port: try wharf.port(plugin))
        try client.send(input)
        client.shutdownWrite()
        return try client.receiveUntilClose()
    }

    @Test(arguments: [
        ("echo", Array("one\ntwo\n".utf8) + Array(repeating: UInt8(120), count: 100) + [10]),
        ("reverse", Array("hello world, this is more than twenty bytes; over".utf8)),
        ("separator_echo", Array("ciao\r\n\r\nluca\r\n\r\nQUIT\r\n\r\nnever\r\n\r\n".utf8)),
    ])
    func answersLikeTheCPlugin(plugin: String, input: [UInt8]) throws {
        let wharf = try RunningWharf(config: Self.config)
        let c = try Self.exchange(wharf, plugin, input)
        let swift = try Self.exchange(wharf, "swift_" + plugin, input)
        #expect(swift.bytes == c.bytes, "\(String(decoding: swift.bytes, as: UTF8.self)) vs \(String(decoding: c.bytes, as: UTF8.self))")
        #expect(swift.reset == c.reset)
    }

    @Test func manyConnectionsAtOnceEachGetTheirOwnAnswers() throws {
        let wharf = try RunningWharf(config: Self.config)
        let clients = try (0..<300).map { _ in try TestSocket(port: try wharf.port("swift_echo")) }
        for (index, client) in clients.enumerated() { try client.send("client \(index)\nsecond \(index)\n") }
        for (index, client) in clients.enumerated() {
            #expect(try client.receiveLine() == "client \(index)\n")
            #expect(try client.receiveLine() == "second \(index)\n")
        }
        #expect(wharf.stop() == 0, "the drain ended every handler task: \(wharf.stderr)")
    }
}

/// WharfPlugin's edges, through a test-only Swift plugin (Tests/SwiftPluginFixture).
@Suite struct SwiftPluginEdgeTests {
    func start() throws -> RunningWharf {
        try RunningWharf(config: gatewayConfig(plugins: "  f: {path: swift_fixture}\n", listeners: ["f"],
                                               extra: "event_loops: 2\n"))
    }

    @Test func aReadDeadlineThrowsAndTheStreamStaysOpen() throws {
        let wharf = try start()
        let client = try TestSocket(port: try wharf.port("f"))
        let started = Date()
        try client.send("deadline\n")
        #expect(try client.receiveLine() == "timed out\n")
        #expect(Date().timeIntervalSince(started) >= 0.09)
        try client.send("still here\n")
        #expect(try client.receiveLine() == "still here\n")
    }

    @Test func aSleepResumesOnTheLoopFromATimerThread() throws {
        let wharf = try start()
        let client = try TestSocket(port: try wharf.port("f"))
        try client.send("sleep\n")
        #expect(try client.receiveLine() == "slept\n")
    }

    @Test func cancellingAReadAbortsTheConnection() throws {
        let wharf = try start()
        let client = try TestSocket(port: try wharf.port("f"))
        let started = Date()
        try client.send("race\n")
        let end = try client.receiveUntilClose()
        #expect(end.reset, "the cancelled read's connection is reset")
        #expect(Date().timeIntervalSince(started) < 5)
        let next = try TestSocket(port: try wharf.port("f"))
        try next.send("sleep\n")
        #expect(try next.receiveLine() == "slept\n", "the loop and the plugin go on")
    }
}
