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

    @Test func outOfDescriptorsAcceptingPausesInsteadOfSpinning() throws {
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", processes: 1)
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
    }
}
