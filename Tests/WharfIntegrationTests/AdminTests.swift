import Foundation
import Testing
import WharfTestSupport

/// The admin endpoint against the real binary: probes, exact metric deltas for a known
/// workload, counters that survive crashes and reloads, readiness during a drain, reload
/// over HTTP, the allow list, and the status report.
@Suite struct AdminTests {
    static func config(adminPort: Int, processes: Int = 2, admin extra: String = "", listener: String = "") -> String {
        """
        processes: \(processes)
        event_loops: 1
        drain_timeout_ms: 10000
        admin: {address: 127.0.0.1, port: \(adminPort)\(extra)}
        plugins:
          echo: {path: echo, config: {max_bytes: 64}}
        listeners:
          - {name: lines, address: 127.0.0.1, port: 0, plugin: echo\(listener)}

        """
    }

    /// Keep the RunningWharf: released, it stops.
    private func start(processes: Int = 2, admin: String = "", listener: String = "") throws
        -> (RunningWharf, AdminClient, Int) {
        let adminPort = LoopbackPort.unused()
        let wharf = try RunningWharf(config: Self.config(adminPort: adminPort, processes: processes, admin: admin,
                                                         listener: listener))
        return (wharf, AdminClient(port: adminPort), try wharf.port(named: "lines"))
    }

    private static let accepted = sample("wharf_connections_accepted_total", listener: "lines", plugin: "echo")
    private static let active = sample("wharf_connections_active", listener: "lines", plugin: "echo")
    private static func closed(_ reason: String) -> String {
        sample("wharf_connections_closed_total", listener: "lines", plugin: "echo", "reason=\"\(reason)\"")
    }

    @Test func probesAnswerAndAnythingElseIs404() throws {
        let (wharf, admin, _) = try start()
        #expect(try admin.get("/healthz").status == 200)
        #expect(try admin.get("/readyz").body == "ready\n")
        #expect(try admin.get("/nothing-here").status == 404)
        #expect(try admin.get("/reload").status == 405, "reload is a POST")
        #expect(try admin.request("DELETE", "/metrics").status == 405)
        let page = try admin.get("/")
        #expect(page.status == 200)
        #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
        #expect(!page.body.contains("http://") && !page.body.contains("https://"), "self-contained: nothing fetched from elsewhere")
        #expect(eventually { wharf.stderr.contains("admin endpoint on http://127.0.0.1:\(admin.port)/") })
        #expect(wharf.stop() == 0)
    }

    @Test func metricsCountAKnownWorkloadExactly() throws {
        let (wharf, admin, port) = try start(listener: ", deny: [127.0.0.2]")
        let before = try admin.metrics()
        for index in 0..<5 {
            let socket = try TestSocket(port: port, source: "127.0.0.3")
            try socket.send("line \(index)\n") // 7 bytes each way
            #expect(try socket.receiveLine() == "line \(index)\n")
        }
        for _ in 0..<2 {
            let socket = try TestSocket(port: port, source: "127.0.0.3")
            try socket.send(String(repeating: "x", count: 100)) // past max_bytes: the host closes it
            #expect(try socket.receiveUntilClose().bytes.isEmpty)
        }
        let refused = try TestSocket(port: port, source: "127.0.0.2")
        #expect(try refused.receiveUntilClose().bytes.isEmpty)

        var after: [String: Double] = [:]
        #expect(eventually {
            after = (try? admin.metrics()) ?? [:]
            return after[Self.active] == 0 && (after[Self.accepted] ?? 0) - (before[Self.accepted] ?? 0) == 8
        }, "every connection counted, none still open")
        func delta(_ name: String) -> Double { (after[name] ?? 0) - (before[name] ?? 0) }
        #expect(delta(Self.accepted) == 8)
        #expect(delta(Self.closed("peer")) == 5)
        #expect(delta(Self.closed("limit")) == 2)
        #expect(delta(Self.closed("denied")) == 1)
        #expect(delta(Self.closed("plugin")) == 0)
        #expect(delta(sample("wharf_received_bytes_total", listener: "lines", plugin: "echo")) == 5 * 7 + 2 * 100)
        #expect(delta(sample("wharf_sent_bytes_total", listener: "lines", plugin: "echo")) == 5 * 7)
        #expect(delta(sample("wharf_connection_duration_seconds_count", listener: "lines", plugin: "echo")) == 7,
                "every opened connection's duration is recorded (the denied one never opened)")
        #expect(after["wharf_worker_processes{generation=\"1\"}"] == 2)
        #expect(after["wharf_generation"] == 1)
        #expect(after.keys.contains { $0.hasPrefix("wharf_build_info{version=") })
        #expect(wharf.stop() == 0)
    }

    @Test func countersNeverGoBackwardsAcrossACrashOrAReload() throws {
        let (wharf, admin, port) = try start()
        var open: [TestSocket] = []
        for index in 0..<4 {
            let socket = try TestSocket(port: port)
            try socket.send("hello \(index)\n")
            _ = try socket.receiveLine()
            open.append(socket)
        }
        let beforeCrash = try admin.metrics()
        #expect(beforeCrash[Self.active] == 4)
        let victims = wharf.workerPIDs
        for pid in victims { kill(pid, SIGKILL) }
        #expect(eventually { Set(wharf.workerPIDs).isDisjoint(with: victims) && wharf.workerPIDs.count == 2 })
        #expect(eventually { (try? admin.get("/readyz").status) == 200 })
        let afterCrash = try admin.metrics()
        Self.expectNoCounterWentBackwards(from: beforeCrash, to: afterCrash)
        #expect(afterCrash[Self.closed("worker_exit")]! - (beforeCrash[Self.closed("worker_exit")] ?? 0) == 4,
                "the connections the crashed workers held are counted closed")
        #expect(afterCrash[Self.active] == 0)
        #expect(afterCrash["wharf_worker_restarts_total{cause=\"signal\"}"] == 2)

        let socket = try TestSocket(port: port)
        try socket.send("after the crash\n")
        #expect(try socket.receiveLine() == "after the crash\n")
        let beforeReload = try admin.metrics()
        let reload = try admin.request("POST", "/reload")
        #expect(reload.status == 200)
        #expect(reload.body.contains("\"generation\":2"))
        // The connection opened before the reload still holds its old worker.
        try socket.send("still here\n")
        #expect(try socket.receiveLine() == "still here\n")
        let afterReload = try admin.metrics()
        Self.expectNoCounterWentBackwards(from: beforeReload, to: afterReload)
        #expect(afterReload["wharf_reloads_total{result=\"ok\"}"] == 1)
        #expect(afterReload[Self.active] == 1)
        #expect(wharf.stop() == 0)
    }

    /// Every counter, histogram bucket and count in `before` is in `after`, not lower.
    static func expectNoCounterWentBackwards(from before: [String: Double], to after: [String: Double]) {
        for (name, value) in before where name.contains("_total") || name.contains("_bucket") || name.contains("_count") {
            #expect((after[name] ?? -1) >= value, "\(name) went from \(value) to \(after[name] ?? -1)")
        }
    }

    @Test func readinessTurns503WhileDraining() throws {
        let (wharf, admin, port) = try start(processes: 1)
        #expect(try admin.get("/readyz").status == 200)
        // Half a line: the connection is busy, so the drain waits for it.
        let busy = try TestSocket(port: port)
        try busy.send("half a li")
        #expect(eventually { (try? admin.metrics()[Self.active]) == 1 })
        kill(wharf.process.processIdentifier, SIGTERM)
        var answer: AdminClient.Response?
        #expect(eventually {
            answer = try? admin.get("/readyz")
            return answer?.status == 503
        })
        #expect(answer?.body.contains("draining") == true)
        try busy.send("ne\n")
        #expect(try busy.receiveLine() == "half a line\n", "the drain lets the busy connection finish")
        busy.shutdownWrite()
        #expect(wharf.waitForExit(seconds: 15))
    }

    @Test func aReloadOverHTTPAnswersWithTheOutcome() throws {
        let (wharf, admin, port) = try start(processes: 1)
        let good = try wharf.readyListeners()
        #expect(good.count == 1)
        try wharf.rewriteConfig("plugins: {echo: {path: echo}}\nlisteners: [{port: eighty}]\n")
        let failed = try admin.request("POST", "/reload")
        #expect(failed.status == 500)
        #expect(failed.body.contains("\"result\":\"failed\""))
        #expect(failed.body.contains("wharf.yaml:2"), "the reason names file and line: \(failed.body)")
        let socket = try TestSocket(port: port)
        try socket.send("still served\n")
        #expect(try socket.receiveLine() == "still served\n")
        let metrics = try admin.metrics()
        #expect(metrics["wharf_reloads_total{result=\"failed\"}"] == 1)
        #expect(metrics["wharf_generation"] == 1)
        #expect(wharf.stop() == 0)
    }

    @Test func theAdminAllowListRefusesOtherClients() throws {
        let (wharf, _, _) = try start(processes: 1, admin: ", allow: [127.0.0.3]")
        let port = try #require(Int(wharf.stderr.split(separator: "admin endpoint on http://127.0.0.1:").last?
            .prefix { $0.isNumber } ?? ""))
        #expect(try AdminClient(port: port, source: "127.0.0.3").get("/healthz").status == 200)
        #expect(throws: (any Error).self, "refused before a byte is read") {
            try AdminClient(port: port, source: "127.0.0.2").get("/healthz")
        }
        #expect(wharf.stop() == 0)
    }

    @Test func statusReportsGenerationsWorkersListenersAndPlugins() throws {
        let (wharf, admin, port) = try start()
        let socket = try TestSocket(port: port)
        try socket.send("hi\n")
        _ = try socket.receiveLine()
        let status = try admin.status()
        #expect(status["ready"] as? Bool == true)
        #expect(status["generation"] as? Int == 1)
        let workers = try #require(status["workers"] as? [[String: Any]])
        #expect(Set(workers.compactMap { $0["pid"] as? Int32 ?? ($0["pid"] as? Int).map(Int32.init) })
            == Set(wharf.workerPIDs))
        let generations = try #require(status["generations"] as? [[String: Any]])
        let plugins = try #require(generations.first?["plugins"] as? [[String: Any]])
        #expect(plugins.first?["instance"] as? String == "echo")
        #expect(plugins.first?["abi"] as? String == HostABI.version)
        #expect((generations.first?["config_hash"] as? String)?.count == 16)
        let listeners = try #require(status["listeners"] as? [[String: Any]])
        #expect(listeners.first?["port"] as? Int == port)
        #expect(listeners.first?["active"] as? Int == 1)
        #expect(wharf.stop() == 0)
    }
}
