import Foundation
import Testing
import WharfTestSupport

/// Listeners whose plugin declares WHARF_PLUGIN_RELAYS_AT_ONCE: the relay pump accepts and
/// each connection opens on its bare socket (`PumpAcceptor`, `BareSocket`). The proxy runs
/// there in every proxy test; these check what is particular to it. (The limit, allow/deny,
/// descriptor back-off and reload tests run on both paths too: `relaysAtOnce`.)
@Suite struct PumpAcceptTests {
    private static let pumpLine = "accepted by the relay pump"

    private func proxy(to upstream: Int, listenerKeys: String = "", extra: String = "") throws -> RunningWharf {
        try RunningWharf(config: extra + """
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(upstream)"]}}
            listeners:
              - {name: front, address: 127.0.0.1, port: 0, plugin: proxy\(listenerKeys)}

            """)
    }

    @Test func aPluginThatReadsAndWritesAfterAllGetsItsChannel() throws {
        let whoami = try FixturePlugins.build("whoami_pump", source: "whoami", define: "VARIANT_RELAYS_AT_ONCE")
        let wharf = try RunningWharf(config: """
            plugins:
              whoami: {path: \(whoami)}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: whoami}

            """)
        let port = try wharf.port("whoami")
        #expect(eventually { wharf.stderr.contains(Self.pumpLine) })
        for _ in 0..<3 {
            let client = try TestSocket(port: port)
            // Asked before any channel exists: the addresses come from accept and the listener.
            let report = try client.receiveLine()
            #expect(report.hasPrefix("peer=127.0.0.1:\(client.localPort) local=127.0.0.1:\(port) proxied=0 "), "\(report)")
            try client.send("one\ntwo\n")
            #expect(try client.receiveLine() == "one\n")
            #expect(try client.receiveLine() == "two\n")
            client.shutdownWrite()
            #expect(try client.receiveUntilClose().bytes.isEmpty)
        }
    }

    @Test func perClientLimitsApplyBeforeTheRelay() throws {
        let backend = TestServer.echo()
        let wharf = try proxy(to: backend.port, listenerKeys: ", per_client: {max_connections: 2}")
        let port = try wharf.port(named: "front")
        func relayed(from source: String) throws -> TestSocket? {
            let client = try TestSocket(port: port, timeout: 3, source: source)
            try? client.send("hi\n")
            return (try? client.receiveLine()) == "hi\n" ? client : nil
        }
        var held = try [relayed(from: "127.0.0.2"), relayed(from: "127.0.0.2")]
        #expect(held.allSatisfy { $0 != nil })
        #expect(try relayed(from: "127.0.0.2") == nil, "a third from the same client is refused")
        #expect(try relayed(from: "127.0.0.3") != nil, "another client is not")
        held.removeFirst()
        #expect(eventually { (try? relayed(from: "127.0.0.2")) != nil }, "a relay that ends frees its place")
        #expect(wharf.stderr.contains(Self.pumpLine))
    }

    /// `auto` (the default) batches when the pump accepts for every listener, not when a
    /// listening channel serves another plugin on the same loop; a setting overrides it.
    @Test(arguments: [(setting: "", alsoEcho: false, expected: ThreadPolicy.batch),
                      (setting: "", alsoEcho: true, expected: .other),
                      (setting: "relay_pump_scheduling: normal\n", alsoEcho: false, expected: .other),
                      (setting: "relay_pump_scheduling: batch\n", alsoEcho: true, expected: .batch)])
    func thePumpThreadIsScheduledAsConfigured(_ setting: String, _ alsoEcho: Bool, _ expected: ThreadPolicy) throws {
        let backend = TestServer.echo()
        let wharf = try RunningWharf(config: setting + """
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(backend.port)"]}}
              echo: {path: echo}
            listeners:
              - {name: front, address: 127.0.0.1, port: 0, plugin: proxy}

            """ + (alsoEcho ? "  - {address: 127.0.0.1, port: 0, plugin: echo}\n" : ""))
        let client = try TestSocket(port: try wharf.port(named: "front"))
        try client.send("hi\n")
        #expect(try client.receiveLine() == "hi\n")
        let worker = try wharf.workerPID()
        #expect(eventually { ThreadPolicy.of(threadsNamed: "wharf-pump", in: worker) == [expected] },
                "\(ThreadPolicy.of(threadsNamed: "wharf-pump", in: worker))")
    }

    @Test func pumpAcceptFalseKeepsTheListeningChannel() throws {
        let backend = TestServer.echo()
        let wharf = try proxy(to: backend.port, listenerKeys: ", pump_accept: false")
        let client = try TestSocket(port: try wharf.port(named: "front"))
        try client.send("hi\n")
        #expect(try client.receiveLine() == "hi\n")
        #expect(eventually { wharf.stderr.contains("generation 1: ") }, "the worker's start-up line")
        #expect(!wharf.stderr.contains(Self.pumpLine), "\(wharf.stderr)")
    }

    @Test func relaysOutliveAReloadAndTheNewGenerationAccepts() throws {
        let backend = TestServer.echo()
        let scratch = try TemporaryDirectory()
        let control = scratch.path("control.sock")
        let wharf = try RunningWharf(config: """
            control_socket: \(control)
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(backend.port)"]}}
            listeners:
              - {name: front, address: 127.0.0.1, port: 0, plugin: proxy}

            """, scratch: scratch)
        let port = try wharf.port(named: "front")
        let before = try TestSocket(port: port)
        try before.send("before\n")
        #expect(try before.receiveLine() == "before\n")
        let oldWorker = try wharf.workerPID()
        let result = try runWharf(["reload", "--config", wharf.configPath])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(eventually { wharf.workerPIDs.contains { $0 != oldWorker } }, "a new generation's worker")
        // The old worker has stopped accepting: new connections all reach the new one, and
        // the relay it holds still carries bytes both ways.
        for round in 0..<20 {
            let client = try TestSocket(port: port)
            try client.send("new \(round)\n")
            #expect(try client.receiveLine() == "new \(round)\n")
        }
        try before.send("still\n")
        #expect(try before.receiveLine() == "still\n")
        #expect(wharf.workerPIDs.contains(oldWorker), "the old worker waits for its relay")
        before.shutdownWrite()
        #expect(try before.receiveUntilClose().bytes.isEmpty)
        #expect(eventually { !wharf.workerPIDs.contains(oldWorker) }, "the old worker drains and leaves")
        #expect(wharf.stop() == 0)
    }
}
