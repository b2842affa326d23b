import Foundation
import WharfTestSupport
import Testing

/// Outgoing streams (connect, ABI 1.1), through a forwarding fixture plugin.
@Suite struct UpstreamTests {
    func startForward(to host: String, port: Int, timeoutMs: Int = 2000) throws -> RunningWharf {
        let library = try FixturePlugins.build("forward", source: "forward")
        let plugins = "  fixture: {path: \(library), config: {host: \"\(host)\", port: \(port), timeout_ms: \(timeoutMs)}}\n"
        return try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["fixture"], extra: "event_loops: 2\n"))
    }

    @Test func upstreamStreamsHaveTheSameAPI() throws {
        let backend = try RunningWharf(config: gatewayConfig(plugins: "  echo: {path: echo, config: {max_bytes: 1048576}}\n",
                                                             listeners: ["echo"]))
        let front = try startForward(to: "127.0.0.1", port: try backend.port("echo"))
        let clients = try (0..<20).map { _ in try TestSocket(port: try front.port("fixture")) }
        for (index, client) in clients.enumerated() { try client.send("through the gateway \(index)\n") }
        for (index, client) in clients.enumerated() {
            let expected = "through the gateway \(index)\n"
            #expect(try client.receiveString(count: expected.utf8.count) == expected)
        }
        let big = (0..<200_000).map { UInt8(32 + $0 % 90) } + [10]
        try clients[0].send(big)
        #expect(try clients[0].receive(count: big.count) == big, "a 200 KB line goes through intact")
    }

    @Test func aHostNameResolvesOffTheLoop() throws {
        let backend = try RunningWharf(config: gatewayConfig(plugins: "  echo: {path: echo}\n", listeners: ["echo"]))
        let front = try startForward(to: "localhost", port: try backend.port("echo"))
        let client = try TestSocket(port: try front.port("fixture"))
        try client.send("by name\n")
        #expect(try client.receiveString(count: 8) == "by name\n")
    }

    @Test func refusedConnectIsReportedAsRefused() throws {
        let front = try startForward(to: "127.0.0.1", port: LoopbackPort.unused())
        let client = try TestSocket(port: try front.port("fixture"))
        #expect(String(decoding: try client.receiveUntilClose().bytes, as: UTF8.self) == "ERR connection refused\n")
    }

    @Test func unknownHostIsReportedAsUnresolved() throws {
        let front = try startForward(to: "no-such-host.invalid", port: 80)
        let client = try TestSocket(port: try front.port("fixture"))
        #expect(String(decoding: try client.receiveUntilClose().bytes, as: UTF8.self) == "ERR host name not resolved\n")
    }

    @Test func silentUpstreamTimesOut() throws {
        // A listener whose accept queue is full drops further SYNs: connects hang.
        let listener = LoopbackPort(listen: 0)
        let port = listener.port
        let filler = try TestSocket(port: port)
        let started = Date()
        let front = try startForward(to: "127.0.0.1", port: port, timeoutMs: 400)
        let client = try TestSocket(port: try front.port("fixture"))
        #expect(String(decoding: try client.receiveUntilClose().bytes, as: UTF8.self) == "ERR timed out\n")
        #expect(Date().timeIntervalSince(started) < 8)
        withExtendedLifetime((listener, filler)) {}
    }

    @Test func theInteractiveClientTalksToTheSeedServices() throws {
        let wharf = try RunningWharf(config: gatewayConfig(plugins: seedPlugins,
                                                           listeners: ["echo", "reverse", "separator_echo"]))
        let reverse = try runWharf(["client", "127.0.0.1", "\(try wharf.port("reverse"))"],
                                   stdin: "hello\nover\nnever sent\n")
        #expect(reverse.status == 0, "the server's close after 'over' ends the session: \(reverse.stderr)")
        #expect(reverse.stdout == "helloollehoverrevo")

        let echo = try runWharf(["client", "127.0.0.1", "\(try wharf.port("echo"))", "--separator", "\\n"],
                                stdin: "one\ntwo\n")
        #expect(echo.status == 0, "stdin's end half-closes; the server then closes")
        #expect(echo.stdout == "one\ntwo\n")

        let pulsar = try runWharf(["client", "127.0.0.1", "\(try wharf.port("separator_echo"))",
                                   "--separator", "\\r\\n\\r\\n"], stdin: "ciao luca\nQUIT\nafter\n")
        #expect(pulsar.stdout == "ciao luca\r\n\r\nQUIT\r\n\r\n")

        let refused = try runWharf(["client", "127.0.0.1", "\(LoopbackPort.unused())"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("connection refused"))
    }
}
