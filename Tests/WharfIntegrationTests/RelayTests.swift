import Foundation
import WharfTestSupport
import Testing

/// The host-side relay (ABI 1.1), through the forwarding fixture built with VARIANT_RELAY.
@Suite struct RelayTests {
    func startRelay(to port: Int, idleMs: Int = 5000, greetingKiB: Int = 0, extra: String = "") throws -> RunningWharf {
        let library = try FixturePlugins.build("relay_forward", source: "forward", define: "VARIANT_RELAY")
        let plugins = "  fixture: {path: \(library), config: {host: \"127.0.0.1\", port: \(port), "
            + "timeout_ms: \(idleMs), greeting_kib: \(greetingKiB)}}\n"
        return try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["fixture"], extra: extra))
    }

    func echoBackend(maxBytes: Int = 1 << 26) throws -> RunningWharf {
        try RunningWharf(config: gatewayConfig(plugins: "  echo: {path: echo, config: {max_bytes: \(maxBytes)}}\n",
                                               listeners: ["echo"]))
    }

    @Test func movesLargeDataBothWaysIntact() throws {
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"))
        let client = try TestSocket(port: try front.port("fixture"))
        var payload = [UInt8](repeating: 0, count: 8 << 20)
        var seed: UInt32 = 12345
        for index in payload.indices {
            seed = seed &* 1_103_515_245 &+ 12345
            let byte = UInt8(truncatingIfNeeded: seed >> 16)
            payload[index] = byte == 10 ? 11 : byte
        }
        payload[payload.count - 1] = 10
        let outgoing = payload
        let sender = Thread { try? client.send(outgoing) }
        sender.start()
        #expect(try client.receive(count: payload.count) == payload)
        try client.send("x\n")
        #expect(try client.receiveString(count: 2) == "x\n", "one byte after 8 MiB")
    }

    @Test func halfCloseIsPropagatedAndEveryReplyArrives() throws {
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"))
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("first\nsecond\n")
        client.shutdownWrite()
        let (received, reset) = try client.receiveUntilClose()
        #expect(String(decoding: received, as: UTF8.self) == "first\nsecond\n")
        #expect(!reset)
        #expect(eventually { front.stderr.contains("relay done: success, 13 bytes up, 13 bytes down") })
    }

    @Test func aSlowReaderThrottlesTheSenderInsteadOfGrowingMemory() throws {
        // The upstream is a listener that never accepts or reads: everything the client
        // sends must back up into the client's own socket, not into Wharf's memory.
        let sink = LoopbackPort(listen: 8)
        let front = try startRelay(to: sink.port)
        let client = try TestSocket(port: try front.port("fixture"))
        let (sent, growth) = try floodAndWatch(client, server: front)
        #expect(sent < 64 << 20, "the sender was throttled (it got \(sent >> 20) MiB out)")
        #expect(growth < 16 << 10, "Wharf's memory stayed bounded (grew \(growth) KB)")
        withExtendedLifetime(sink) {}
    }

    @Test func idleRelaysEnd() throws {
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"), idleMs: 300)
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("ping\n")
        #expect(try client.receiveString(count: 5) == "ping\n")
        let started = Date()
        #expect(client.isClosedByPeer())
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(eventually { front.stderr.contains("relay done: timed out, 5 bytes up, 5 bytes down") })
    }

    @Test func plainTCPRelaysRunOnThePumpThread() throws {
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"))
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("ping\n")
        #expect(try client.receiveString(count: 5) == "ping\n")
        let tasks = "/proc/\(try front.workerPID())/task"
        let names = try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap {
            try? String(contentsOfFile: "\(tasks)/\($0)/comm", encoding: .utf8)
        }
        #expect(names.contains { $0.hasPrefix("wharf-pump-") }, "threads: \(names)")
    }

    @Test func whatThePluginWroteAndTheHostBufferedGoesFirstInOrder() throws {
        // 32 MiB written just before relay cannot all reach the socket at once: the handover
        // waits for it. "world" arrived with "hello" and sits in the host's buffer.
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"), greetingKiB: 32768)
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("hello\nworld\n")
        let expected = [UInt8](repeating: UInt8(ascii: "g"), count: 32 << 20) + Array("\nhello\nworld\n".utf8)
        #expect(try client.receive(count: expected.count) == expected)
        try client.send("after\n")
        #expect(try client.receiveString(count: 6) == "after\n")
    }

    @Test func aDrainEndsRelaysWhenTheGracePeriodIsOver() throws {
        let backend = try echoBackend()
        let front = try startRelay(to: try backend.port("echo"), extra: "drain_timeout_ms: 300\n")
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("ping\n")
        #expect(try client.receiveString(count: 5) == "ping\n")
        #expect(front.stop() == 0)
        #expect(client.isClosedByPeer())
        #expect(eventually { front.stderr.contains("relay done: host shutting down, 5 bytes up, 5 bytes down") }, "\(front.stderr)")
    }
}
