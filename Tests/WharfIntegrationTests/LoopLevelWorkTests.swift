import Foundation
import Testing
import WharfTestSupport

/// Loop-level work (ABI 1.5): a plugin's own timers, connections and posts from its threads,
/// outside any client connection, and how they end when the instance shuts down.
@Suite struct LoopLevelWorkTests {
    @Test func timersConnectsAndPostsRunWithoutAClientAndEndBeforeShutdown() throws {
        let upstream = try TestListener()
        let library = try FixturePlugins.build("ticker", source: "ticker")
        let plugins = "  ticker: {path: \(library), config: {port: \(upstream.port), interval_ms: 30}}\n"
        let wharf = try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["ticker"],
                                                           extra: "event_loops: 2\ndrain_timeout_ms: 10000\n"))
        // No client has connected: the post from the plugin's thread started a connect and a timer.
        let connection = try upstream.accept()
        #expect(try connection.receiveLine() == "connected\n")
        #expect(try connection.receiveLine() == "tick 1\n")
        #expect(try connection.receiveLine() == "tick 2\n")
        try connection.send("pong\n")
        #expect(eventually { wharf.stderr.contains("ticker heard: pong") }, "loop-level streams read like any other")

        let client = try TestSocket(port: try wharf.port("ticker"))
        #expect(try client.receiveLine() == "hello\n", "client connections are served beside it")

        let started = Date()
        #expect(wharf.stop() == 0)
        #expect(Date().timeIntervalSince(started) < 5, "loop-level work does not hold up the drain")
        #expect(connection.isClosedByPeer())
        let log = wharf.stderr
        #expect(log.contains("ticker timer ended: host shutting down"), "\(log)")
        #expect(log.contains("ticker stream closed: host shutting down"), "\(log)")
        #expect(log.contains("ticker shutdown after timer_ended=1 stream_closed=1 ticks>0=1"),
                "both ended before the instance's shutdown hook: \(log)")
    }
}
