import Foundation
import Testing
import WharfTestSupport

/// What happens at the edges of the machine's resources.
@Suite struct ResourceLimitTests {
    /// The CPU time (user + system) a process has used, in clock ticks.
    private func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat.split(separator: ")").last!.split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!
    }

    /// `relaysAtOnce`: the relay pump accepts (`PumpListener`), and pauses itself.
    @Test(arguments: [false, true]) func outOfDescriptorsAcceptingPausesInsteadOfSpinning(relaysAtOnce: Bool) throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(relaysAtOnce: relaysAtOnce), tag: "a",
                                          processes: 1)
        let wharf = try RunningWharf(config: config, launcher: "ulimit -n 48; exec")
        let port = try wharf.port(named: "main")
        let worker = try wharf.workerPID()
        // More connections than the worker has descriptors left: the rest wait in the backlog.
        var clients: [TestSocket] = []
        for _ in 0..<60 { clients.append(try TestSocket(port: port, timeout: 2)) }
        #expect(eventually { wharf.stderr.contains("cannot accept: too many open files") })
        let before = try cpuTicks(worker)
        usleep(1_000_000)
        let used = try cpuTicks(worker) - before
        #expect(used < 20, "the worker used \(used) of 100 ticks in a second at its descriptor limit")
        let reports = wharf.stderr.components(separatedBy: "cannot accept").count - 1
        #expect(reports <= 3, "at most one report a second, not one per failure: \(reports)")
        // Descriptors free up: the waiting connections are accepted and served.
        let waiting = Array(clients.suffix(20))
        clients.removeAll() // closes the first 40 (a slice would keep them alive)
        for client in waiting { #expect(try client.ask("late").version == "v1") }
        #expect(wharf.stderr.contains("accepted by the relay pump") == relaysAtOnce)
    }
}

/// `max_connections` on a listener, both ways of saying no, whether a listening channel or a
/// relay pump accepts (`relaysAtOnce`).
@Suite struct ConnectionLimitTests {
    private func start(_ keys: String, relaysAtOnce: Bool) throws -> RunningWharf {
        let config = WorkerFixture.config(library: try WorkerFixture.library(relaysAtOnce: relaysAtOnce), tag: "a",
                                          processes: 1, listenerKeys: keys)
        let wharf = try RunningWharf(config: config)
        if relaysAtOnce { #expect(eventually { wharf.stderr.contains("accepted by the relay pump") }) }
        return wharf
    }

    @Test(arguments: [false, true]) func pastTheLimitNewConnectionsWaitInTheBacklog(relaysAtOnce: Bool) throws {
        let wharf = try start("max_connections: 3", relaysAtOnce: relaysAtOnce)
        let port = try wharf.port(named: "main")
        var served = try (0..<3).map { _ in try TestSocket(port: port) }
        for client in served { #expect(try client.ask().version == "v1") }
        let waiting = try TestSocket(port: port, timeout: 1)
        try waiting.send("waiting\n")
        #expect(throws: (any Error).self, "not accepted while three are open") { try waiting.receiveLine() }
        served.removeFirst() // one closes: the waiting one is accepted and answered
        #expect(try WorkerReply(waiting.receiveLine()).version == "v1")
        #expect(wharf.stop() == 0)
    }

    @Test(arguments: [false, true]) func withOnLimitRejectTheExtraOnesAreClosedAtOnce(relaysAtOnce: Bool) throws {
        let wharf = try start("max_connections: 3, on_limit: reject", relaysAtOnce: relaysAtOnce)
        let port = try wharf.port(named: "main")
        let served = try (0..<3).map { _ in try TestSocket(port: port) }
        for client in served { #expect(try client.ask().version == "v1") }
        let extra = try TestSocket(port: port, timeout: 3)
        #expect(try extra.receiveUntilClose().bytes.isEmpty, "closed without a word")
        #expect(eventually { wharf.stderr.contains("max_connections reached (on_limit: reject)") })
        for client in served { #expect(try client.ask().version == "v1", "the admitted ones are untouched") }
        #expect(wharf.stop() == 0)
    }
}

/// `max_write_buffer_size`: a write that would leave more than that unsent fails with
/// WHARF_E_WRITE_FULL and the stream is aborted; other connections are not affected.
@Suite struct WriteBufferLimitTests {
    @Test func aWritePastTheCapFailsAndClosesOnlyItsStream() throws {
        let adminPort = LoopbackPort.unused()
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", processes: 1,
                                          extra: "admin: {address: 127.0.0.1, port: \(adminPort)}\n",
                                          listenerKeys: "max_write_buffer_size: 1048576")
        let wharf = try RunningWharf(config: config)
        let port = try wharf.port(named: "main")
        let small = try TestSocket(port: port)
        try small.send("blob 100000\n")
        #expect(try small.receive(count: 100_000).count == 100_000, "under the cap: written")
        _ = try small.receiveLine() // the reply to the blob line
        let big = try TestSocket(port: port, timeout: 5)
        try big.send("blob 2000000\n")
        #expect(try big.receiveUntilClose().bytes.isEmpty, "over the cap: nothing queued, the stream aborted")
        #expect(eventually { wharf.stderr.contains("blob of 2000000 bytes refused: write buffer full (max_write_buffer_size) (code -23)") })
        #expect(try small.ask("still here").version == "v1")
        let closed = sample("wharf_connections_closed_total", listener: "main", plugin: "fixture", "reason=\"limit\"")
        #expect(eventually { (try? AdminClient(port: adminPort).metrics()[closed]) == 1 })
        #expect(wharf.stop() == 0)
    }
}
