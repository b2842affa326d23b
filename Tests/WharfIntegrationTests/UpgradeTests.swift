import Foundation
import Testing
import WharfTestSupport

/// Binary upgrades through the real binary: the executable at the same path takes over the
/// same sockets.
@Suite(.serialized) struct UpgradeTests {
    private func start() throws -> RunningWharf {
        let scratch = try TemporaryDirectory()
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                          extra: "control_socket: \(scratch.path("control.sock"))\ndrain_timeout_ms: 30000\n")
        return try RunningWharf(config: config, scratch: scratch)
    }

    /// The inodes of the sockets listening on `port`.
    private func listeningInodes(_ port: Int) -> Set<Substring> {
        Set(TCPTable.rows().filter { $0[1].hasSuffix(TCPTable.portSuffix(port)) && $0[3] == "0A" }.map { $0[9] })
    }

    /// The number after `word` in `text` ("… pid 123; …").
    private func pid(after word: String, in text: String) -> Int32? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == ";" || $0 == "\n" })
        return words.firstIndex { $0 == word }.flatMap { Int32(words[$0 + 1]) }.flatMap { $0 > 1 ? $0 : nil }
    }

    private func stopOrphan(_ pid: Int32) {
        precondition(pid > 1, "never signal a process group")
        kill(pid, SIGTERM)
        _ = eventually(seconds: 10) { !processExists(pid) }
        if processExists(pid) { kill(pid, SIGKILL) }
    }

    @Test func anUpgradeUnderLoadKeepsTheSocketsAndDropsNothing() throws {
        let wharf = try start()
        let port = try wharf.port(named: "main")
        let sockets = listeningInodes(port)
        #expect(sockets.count == 2, "one socket per worker slot")
        let oldWorkers = wharf.workerPIDs
        let load = PingPongLoad(port: { port }, persistent: 12)
        usleep(300_000)

        let result = try runWharf(["upgrade", "--config", wharf.configPath])
        #expect(result.status == 0, "\(result.stderr)")
        let newPID = try #require(pid(after: "pid", in: result.stdout))
        defer { stopOrphan(newPID) }
        let newWorkers = childProcesses(of: newPID)
        #expect(newWorkers.count == 2)
        for _ in 0..<20 {
            #expect(newWorkers.contains(try TestSocket(port: port).ask().pid), "new connections reach the new workers")
        }
        #expect(listeningInodes(port) == sockets, "the same sockets, never re-bound")
        usleep(300_000)
        let failures = load.stop()
        #expect(failures.isEmpty, "failures: \(failures)")
        #expect(load.connects > 20)
        // The old supervisor exits once its workers' last connections have closed.
        #expect(wharf.waitForExit(seconds: 10), "\(wharf.stderr)")
        #expect(!wharf.process.isRunning && wharf.process.terminationStatus == 0)
        #expect(oldWorkers.allSatisfy { !processExists($0) })
        #expect(try TestSocket(port: port).ask().version == "v1", "and the new one serves on")
        let reload = try runWharf(["reload", "--config", wharf.configPath])
        #expect(reload.status == 0, "the control socket is the new supervisor's: \(reload.stderr)")
    }

    @Test func sigusr2Upgrades() throws {
        let wharf = try start()
        let port = try wharf.port(named: "main")
        kill(wharf.process.processIdentifier, SIGUSR2)
        #expect(wharf.waitForExit(seconds: 10), "the old supervisor hands over and exits")
        let line = try #require(wharf.stderr.split(separator: "\n").first { $0.contains("upgrade: started") })
        let newPID = try #require(pid(after: "pid", in: String(line)))
        defer { stopOrphan(newPID) }
        #expect(childProcesses(of: newPID).contains(try TestSocket(port: port).ask().pid))
    }

    @Test func aNewBinaryThatCannotStartChangesNothing() throws {
        let wharf = try start()
        let port = try wharf.port(named: "main")
        let connection = try TestSocket(port: port)
        _ = try connection.ask()
        let good = try String(contentsOfFile: wharf.configPath, encoding: .utf8)
        try wharf.rewriteConfig(good + "  - {port: nonsense}\n")
        let result = try runWharf(["upgrade", "--control-socket", wharf.scratch.path("control.sock")])
        #expect(result.status == 1)
        #expect(result.stderr.contains("before it was ready"), "\(result.stderr)")
        #expect(wharf.process.isRunning)
        #expect(try connection.ask().version == "v1")
        #expect(try TestSocket(port: port).ask().version == "v1")
        #expect(wharf.workerPIDs.count == 2, "no process left behind")
        try wharf.rewriteConfig(good)
        #expect(wharf.stop() == 0)
    }
}
