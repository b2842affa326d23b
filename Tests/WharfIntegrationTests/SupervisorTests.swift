import Foundation
import Testing
import WharfTestSupport

/// The supervisor and its worker processes, through the real binary: crashes, stalls, the
/// supervisor's own death, signals.
@Suite(.serialized) struct SupervisorTests {
    /// Opens connections until both workers of a `processes: 2` wharf hold some.
    private func connectionsOnBothWorkers(_ port: Int) throws -> [Int32: [TestSocket]] {
        var byWorker: [Int32: [TestSocket]] = [:]
        for attempt in 0..<200 where byWorker.count < 2 || byWorker.values.contains(where: { $0.count < 3 }) {
            let socket = try TestSocket(port: port)
            byWorker[try socket.ask("who \(attempt)").pid, default: []].append(socket)
        }
        guard byWorker.count == 2 else { throw TestError.failed("connections all went to \(byWorker.keys)") }
        return byWorker
    }

    @Test func aCrashingPluginCostsOnlyItsWorkersConnections() throws {
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a"))
        let port = try wharf.port(named: "main")
        let byWorker = try connectionsOnBothWorkers(port)
        let (victim, survivor) = (byWorker.keys.min()!, byWorker.keys.max()!)
        #expect(Set(wharf.workerPIDs) == Set(byWorker.keys))

        let crashedAt = Date()
        try byWorker[victim]![0].send("crash\n")
        for socket in byWorker[victim]! { #expect(socket.isClosedByPeer(), "the crashed worker's connections end") }
        // New connections are never refused, even before the replacement is up.
        for index in 0..<20 {
            let socket = try TestSocket(port: port)
            #expect(try socket.ask("new \(index)").pid != victim)
        }
        for socket in byWorker[survivor]! {
            #expect(try socket.ask("still there").pid == survivor, "the other worker's connections see nothing")
        }
        #expect(eventually(seconds: 5) { wharf.workerPIDs.count == 2 && !wharf.workerPIDs.contains(victim) })
        #expect(eventually(seconds: 5) { wharf.stderr.contains("worker \(victim) is back") || wharf.stderr.contains("is back") })
        let back = Date().timeIntervalSince(crashedAt)
        #expect(back < 1.5, "replaced in \(back) s")
        #expect(eventually { wharf.stderr.contains("worker \(victim) (generation 1, slot") })
        #expect(eventually { wharf.stderr.contains("plugins fixture (") }, "the crash report names the plugins")
        #expect(eventually { wharf.stderr.contains("killed by SIGSEGV") })
        #expect(wharf.stop() == 0)
    }

    @Test func aCrashLoopBacksOffAndTheSlotComesBack() throws {
        let scratch = try TemporaryDirectory()
        let control = scratch.path("control.sock")
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                                                  processes: 1, extra: "control_socket: \(control)\n"),
                                     scratch: scratch)
        let port = try wharf.port(named: "main")
        #expect(try runWharf(["status", "--control-socket", control]).stdout.contains("crash_looping []"))
        for round in 0..<5 {
            let socket = try TestSocket(port: port)
            #expect(try socket.ask("round \(round)").version == "v1")
            try socket.send("crash\n")
            #expect(socket.isClosedByPeer())
        }
        #expect(eventually(seconds: 5) { wharf.stderr.contains("is crash-looping (5 crashes in 10 s): next start in 1000 ms") })
        // While the slot waits its sockets are closed: with one worker, connects are refused
        // (with more, they go to the others) rather than left waiting; then it serves again.
        // Checked first: the back-off lasts a second, and starting `wharf status` on a slow
        // machine (under strace) has taken longer.
        #expect((try? TestSocket(port: port, timeout: 1)) == nil, "refused during the back-off")
        #expect(try runWharf(["status", "--control-socket", control]).stdout.contains("crash_looping [1:0]"))
        #expect(eventually(seconds: 5) { (try? TestSocket(port: port).ask("after").version) == "v1" })
        #expect(wharf.stop() == 0)
    }

    @Test func aStuckWorkerIsKilledAndReplaced() throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                          extra: "worker_stall_timeout_ms: 1500\n")
        let wharf = try RunningWharf(config: config)
        let port = try wharf.port(named: "main")
        let byWorker = try connectionsOnBothWorkers(port)
        let (victim, survivor) = (byWorker.keys.min()!, byWorker.keys.max()!)
        try byWorker[victim]![0].send("spin\n")
        #expect(eventually(seconds: 6) { wharf.stderr.contains("worker \(victim) (generation 1, slot") &&
            wharf.stderr.contains("stopped answering") })
        #expect(eventually(seconds: 5) { wharf.workerPIDs.count == 2 && !wharf.workerPIDs.contains(victim) })
        #expect(try byWorker[survivor]![0].ask("fine").pid == survivor)
        #expect(wharf.stop() == 0)
    }

    @Test func aBlockedEventLoopIsReported() throws {
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                                                  processes: 1))
        let client = try TestSocket(port: try wharf.port(named: "main"))
        #expect(try client.ask("sleep 1600").version == "v1")
        #expect(eventually { wharf.stderr.contains("runs again after a stall of about 1") })
        #expect(eventually { wharf.stderr.contains("event loop 0 has not run for 1") })
        #expect(eventually { wharf.stderr.contains("plugin fixture (libworker_v1.so") }, "the plugin on the stuck loop's stack is named")
        #expect(wharf.stop() == 0)
    }

    /// `relaysAtOnce`: the relay pump accepts (`PumpAcceptor`) and passes the stalled loop by.
    @Test(arguments: [false, true]) func newConnectionsAvoidAStalledEventLoop(relaysAtOnce: Bool) throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(relaysAtOnce: relaysAtOnce), tag: "a",
                                          processes: 1)
            .replacing("event_loops: 1", with: "event_loops: 2")
        let wharf = try RunningWharf(config: config)
        let port = try wharf.port(named: "main")
        if relaysAtOnce { #expect(eventually { wharf.stderr.contains("accepted by the relay pump") }) }
        // Accepted connections go to the loops in turn: of two, one lands on each.
        let first = try TestSocket(port: port), second = try TestSocket(port: port)
        _ = try first.ask("hello")
        _ = try second.ask("hello")
        try first.send("sleep 3000\n") // one loop is stuck for 3 s
        usleep(800_000) // past the 500 ms after which a loop counts as stalled
        let started = Date()
        for index in 0..<6 {
            let socket = try TestSocket(port: port, timeout: 1.5)
            #expect(try socket.ask("fresh \(index)").version == "v1", "connection \(index) is served at once")
        }
        #expect(Date().timeIntervalSince(started) < 1.5, "none waited for the stalled loop")
        #expect(eventually { wharf.stderr.contains("plugin fixture (libworker_v1") })
        #expect(wharf.stop() == 0)
    }

    @Test func killingTheSupervisorLeavesNoOrphans() throws {
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a"))
        let port = try wharf.port(named: "main")
        let workers = wharf.workerPIDs
        #expect(workers.count == 2)
        let busy = try TestSocket(port: port)
        _ = try busy.ask("accepted") // not still in the backlog, which closes with the sockets
        try busy.send("half a li")
        kill(wharf.process.processIdentifier, SIGKILL)
        // The workers see their control channel close, stop accepting and drain.
        try busy.send("ne\n")
        #expect(try WorkerReply(busy.receiveLine()).config.contains("a"), "a request in flight is still answered")
        #expect(eventually(seconds: 10) { workers.allSatisfy { !processExists($0) } }, "workers left: \(workers)")
        #expect(eventually { wharf.stderr.contains("the supervisor is gone: draining") })
    }

    @Test func signalsOperatorsSendDoNotKill() throws {
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a"))
        let port = try wharf.port(named: "main")
        let supervisor = wharf.process.processIdentifier
        // (SIGUSR2 to the supervisor upgrades the binary: UpgradeTests.)
        for signal in [SIGUSR1, SIGUSR2, SIGHUP] {
            if signal != SIGUSR2 { kill(supervisor, signal) }
            for worker in wharf.workerPIDs { kill(worker, signal) }
            usleep(200_000)
            #expect(wharf.process.isRunning, "signal \(signal)")
            #expect(try TestSocket(port: port).ask().version == "v1")
        }
        #expect(eventually { wharf.stderr.contains("reloaded: generation 2") },
                "SIGHUP reloads\n\(wharf.stderr)\n\(Self.threadStates(of: supervisor))")
        #expect(eventually { wharf.stderr.contains("SIGUSR1") })
        #expect(wharf.stop() == 0)
    }

    /// A hang-up sent to every process (a terminal closing, `kill -HUP -PGID`) while a
    /// reload starts workers: the supervisor reloads and no starting worker dies of it. A
    /// worker ignored the supervisor's signals only once it had started; before, every try
    /// killed a new worker and the reload failed (found by `signalsOperatorsSendDoNotKill`
    /// under load, which signals the workers right after the supervisor).
    @Test func aHangupToEveryProcessDuringAReloadKillsNoWorker() throws {
        let wharf = try RunningWharf(config: WorkerFixture.config(library: try WorkerFixture.library(), tag: "a"))
        kill(wharf.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(0.5)
        while Date() < deadline {
            for worker in wharf.workerPIDs { kill(worker, SIGHUP) }
            usleep(2_000)
        }
        #expect(eventually { wharf.stderr.contains("reloaded: generation 2") }, "\(wharf.stderr)")
        #expect(!wharf.stderr.contains("killed by SIGHUP"), "\(wharf.stderr)")
        #expect(wharf.stop() == 0)
    }

    /// Each thread's name, state, kernel wait channel and signal masks, for a failure's
    /// message: where a process that does not answer its signals stands.
    static func threadStates(of pid: pid_t) -> String {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.sorted().map { task in
            let base = "/proc/\(pid)/task/\(task)"
            let read = { (name: String) in (try? String(contentsOfFile: "\(base)/\(name)", encoding: .utf8)) ?? "?" }
            let status = read("status").split(separator: "\n")
                .filter { $0.hasPrefix("State") || $0.hasPrefix("SigPnd") || $0.hasPrefix("SigBlk") }
                .joined(separator: " ")
            return "\(read("comm").trimmingCharacters(in: .whitespacesAndNewlines)) wchan=\(read("wchan")) \(status)"
        }.joined(separator: "\n") + "\nShdPnd/SigIgn/SigCgt: " + ((try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "")
            .split(separator: "\n").filter { $0.hasPrefix("ShdPnd") || $0.hasPrefix("SigIgn") || $0.hasPrefix("SigCgt") }
            .joined(separator: " ")
            + "\nchildren: " + childProcesses(of: pid).map { child in
                let status = ((try? String(contentsOfFile: "/proc/\(child)/status", encoding: .utf8)) ?? "")
                    .split(separator: "\n").filter { $0.hasPrefix("State") }.joined()
                let command = ((try? String(contentsOfFile: "/proc/\(child)/cmdline", encoding: .utf8)) ?? "")
                    .replacingOccurrences(of: "\0", with: " ").prefix(60)
                return "\(child) \(status) \(command)"
            }.joined(separator: "; ")
    }

    @Test func sigtermExitsAsSoonAsTheLastConnectionCloses() throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", extra: "drain_timeout_ms: 30000\n")
        let wharf = try RunningWharf(config: config)
        let port = try wharf.port(named: "main")
        let busy = try TestSocket(port: port)
        try busy.send("sent before the signal, unfinished")
        usleep(100_000)
        kill(wharf.process.processIdentifier, SIGTERM)
        usleep(300_000)
        #expect((try? TestSocket(port: port, timeout: 1)) == nil, "no new connections while draining: \(wharf.stderr)")
        try busy.send("\n")
        #expect(try WorkerReply(busy.receiveLine()).version == "v1", "the reply to a request sent before SIGTERM arrives")
        #expect(busy.isClosedByPeer())
        let closed = Date()
        #expect(wharf.waitForExit(seconds: 5))
        #expect(Date().timeIntervalSince(closed) < 2, "exits when the last connection closes, not after drain_timeout_ms")
        #expect(wharf.process.terminationStatus == 0)
    }

    @Test(.enabled(if: getuid() == 0, "needs root to switch users"))
    func workersDropPrivilegesTheSupervisorKeepsThem() throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", extra: "user: nobody\n")
        let wharf = try RunningWharf(config: config)
        #expect(try TestSocket(port: try wharf.port(named: "main")).ask().version == "v1")
        let nobody = getpwnam("nobody")!.pointee.pw_uid
        func uid(_ pid: Int32) throws -> UInt32? {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            return status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.flatMap { UInt32($0.split(separator: "\t")[1]) }
        }
        for worker in wharf.workerPIDs { #expect(try uid(worker) == nobody) }
        #expect(try uid(wharf.process.processIdentifier) == 0, "the supervisor can still bind on reload")
        #expect(wharf.stop() == 0)
    }

    @Test func aSecondSigtermStopsAtOnce() throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", extra: "drain_timeout_ms: 30000\n")
        let wharf = try RunningWharf(config: config)
        let busy = try TestSocket(port: try wharf.port(named: "main"))
        try busy.send("unfinished")
        usleep(100_000)
        kill(wharf.process.processIdentifier, SIGTERM)
        usleep(200_000)
        #expect(wharf.process.isRunning, "draining the busy connection")
        kill(wharf.process.processIdentifier, SIGTERM)
        #expect(wharf.waitForExit(seconds: 3))
        #expect(busy.isClosedByPeer())
        #expect(eventually { wharf.stderr.contains("second stop signal") })
    }
}

func processExists(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // A zombie is gone for every purpose here.
    return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? true)
}
