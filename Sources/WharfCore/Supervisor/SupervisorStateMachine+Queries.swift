import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the supervisor's runtime and the admin endpoint ask of the machine: nothing here
/// changes it.
extension SupervisorStateMachine {
    public var servingGeneration: Int? { generations.first { $0.value.state == .serving }?.key }
    public var isReloading: Bool { generations.values.contains { $0.state == .starting } }
    public var workerIDs: [pid_t] { workers.keys.sorted() }
    /// Generations with workers that serve or drain.
    public var liveGenerations: [Int] {
        generations.filter { $0.value.state == .serving || $0.value.state == .draining }.keys.sorted()
    }

    public func generation(of pid: pid_t) -> Int? { workers[pid]?.generation }

    /// Why worker `pid` ending with `status` now is a failure that costs a restart
    /// (`stall`: killed for not answering; `signal`; `exit`), or nil if it was expected (told
    /// to leave, the gateway stopping, its generation draining or failed).
    public func failureCause(of pid: pid_t, status: CInt) -> String? {
        guard phase == .running || phase == .starting, let worker = workers[pid],
              let generation = generations[worker.generation], generation.state == .serving else { return nil }
        switch worker.state {
        case .leaving: return nil
        case .starting, .serving:
            if worker.lastAlive == .distantFuture { return "stall" }
            return status & 0x7f == 0 ? "exit" : "signal"
        }
    }

    /// The (generation, slot) pairs whose sockets must stay open: every slot of a generation
    /// that serves or starts, and the slot of every worker that may still be accepting.
    public var socketUsers: Set<SocketUser> {
        var users = Set<SocketUser>()
        for (number, generation) in generations where generation.state == .serving || generation.state == .starting {
            for slot in 0..<generation.settings.processes { users.insert(SocketUser(generation: number, slot: slot)) }
        }
        for worker in workers.values where worker.accepting && !worker.released {
            users.insert(SocketUser(generation: worker.generation, slot: worker.slot))
        }
        return users
    }

    /// Slots in a crash loop: waiting to start a worker again, or running one that has not
    /// yet stayed up long enough to end the loop.
    public func crashLooping(at now: NIODeadline) -> [SocketUser] {
        generations.flatMap { number, generation in
            generation.restarts.indices.filter { slot in
                guard generation.restarts[slot].inCrashLoop else { return false }
                let current = workers.values.first { $0.generation == number && $0.slot == slot }
                return current.map { now - $0.startedAt < generation.restarts[slot].stableUptime } ?? true
            }.map { SocketUser(generation: number, slot: $0) }
        }.sorted { ($0.generation, $0.slot) < ($1.generation, $1.slot) }
    }

    public struct SocketUser: Hashable, Sendable {
        public let generation: Int
        public let slot: Int
    }

    /// Whether every serving worker sent a heartbeat within `interval` (systemd's watchdog).
    /// Why the gateway is not ready for traffic (nil: it is): it is starting or stopping, or
    /// a slot of the serving generation has no worker serving (one is being replaced).
    public var notReadyReason: String? {
        switch phase {
        case .starting: return "starting"
        case .stopping, .stopped: return "draining: the gateway is stopping"
        case .running: break
        }
        guard let number = servingGeneration, let generation = generations[number] else { return "no generation serves" }
        for slot in 0..<generation.settings.processes {
            let serving = workers.values.contains { $0.generation == number && $0.slot == slot && $0.state == .serving }
            if !serving { return "worker slot \(slot) of generation \(number) is being replaced" }
        }
        return nil
    }

    /// One line per worker process, for the status page.
    public struct WorkerSummary: Sendable {
        public let pid: pid_t
        public let generation: Int
        public let slot: Int
        public let state: String
        public let startedAt: NIODeadline
    }

    public var workerSummaries: [WorkerSummary] {
        workers.values.sorted { ($0.generation, $0.slot, $0.pid) < ($1.generation, $1.slot, $1.pid) }.map { worker in
            let state = switch worker.state {
            case .starting: "starting"
            case .serving: "serving"
            case .leaving: worker.told == .retire ? "retiring" : "draining"
            }
            return WorkerSummary(pid: worker.pid, generation: worker.generation, slot: worker.slot, state: state,
                                 startedAt: worker.startedAt)
        }
    }

    /// Each generation's number and state (starting, serving, draining, failed).
    public var generationStates: [(number: Int, state: String)] {
        generations.keys.sorted().map { ($0, "\(generations[$0]!.state)") }
    }

    public func workersAlive(at now: NIODeadline, within interval: TimeAmount) -> Bool {
        workers.values.allSatisfy { $0.state != .serving || now - $0.lastAlive <= interval }
    }
}
