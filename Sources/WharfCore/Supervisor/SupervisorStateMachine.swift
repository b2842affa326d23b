import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The supervisor's decisions as a value: generations of worker processes, their lifecycles,
/// crash restarts with back-off, reloads, draining and stopping. Each event returns the
/// actions to carry out; the clock comes in as `now`, so tests drive it without processes.
///
/// A generation is the set of workers started from one config. At most one is serving; a
/// reload starts a new one beside it, and only when every new worker is ready does the old
/// one drain. A generation that fails to start changes nothing.
public struct SupervisorStateMachine {
    /// A worker that has not said `ready` by then is killed and counts as a failed start.
    public static let startTimeout = TimeAmount.seconds(15)
    /// A draining worker stops itself at drain_timeout_ms plus two seconds; this is the
    /// margin after which the supervisor stops waiting.
    public static let leaveMargin = TimeAmount.seconds(5)
    /// A new worker waits this long at most for the old one in its slot to stop accepting.
    public static let handoverTimeout = TimeAmount.seconds(2)

    public internal(set) var phase = Phase.starting
    /// Started by a binary upgrade and the old supervisor's workers may still accept.
    public internal(set) var holdingForHandover = false
    // Internal only so the extensions beside this file reach them; changed by events alone.
    var generations: [Int: Generation] = [:]
    var workers: [pid_t: Worker] = [:]
    private var exitCode: Int32 = 0

    public init() {}

    // MARK: Events

    /// Starts the first generation. `holdAccept`: a binary upgrade, whose workers may accept
    /// only after `releaseHandover`.
    public mutating func start(_ settings: GenerationSettings, holdAccept: Bool = false) -> [SupervisorAction] {
        precondition(generations.isEmpty, "start once")
        holdingForHandover = holdAccept
        return begin(settings)
    }

    /// Starts `settings` beside the serving generation. Only while running and not already
    /// reloading; the caller checks `canReload` first.
    public mutating func reload(_ settings: GenerationSettings) -> [SupervisorAction] {
        precondition(canReload == nil, "reload while \(canReload ?? "")")
        return begin(settings)
    }

    /// Why a reload cannot start now, or nil.
    public var canReload: String? {
        switch phase {
        case .starting: return "still starting"
        case .stopping, .stopped: return "stopping"
        case .running: return isReloading ? "another reload is in progress" : nil
        }
    }

    private mutating func begin(_ settings: GenerationSettings) -> [SupervisorAction] {
        generations[settings.number] = Generation(settings: settings)
        return (0..<settings.processes).map { .spawn(generation: settings.number, slot: $0) }
    }

    public mutating func spawned(pid: pid_t, generation: Int, slot: Int, at now: NIODeadline) -> [SupervisorAction] {
        workers[pid] = Worker(pid: pid, generation: generation, slot: slot, startedAt: now,
                              state: .starting(deadline: now + Self.startTimeout), lastAlive: now)
        if generations[generation]?.state == .failed || phase == .stopping {
            return leave(pid, .stop, at: now)
        }
        return []
    }

    public mutating func spawnFailed(generation number: Int, slot: Int, reason: String,
                                     at now: NIODeadline) -> [SupervisorAction] {
        guard let generation = generations[number] else { return [] }
        if generation.state == .starting { return fail(number, .listen, reason, at: now) }
        return [.log(.error, reason)] + scheduleRespawn(number, slot: slot, uptime: .zero, at: now)
    }

    public mutating func received(_ message: WorkerMessage, from pid: pid_t, at now: NIODeadline) -> [SupervisorAction] {
        guard var worker = workers[pid] else { return [] }
        switch message {
        case .alive:
            workers[pid]?.lastAlive = now
            return []
        case .plugin:
            return [] // for the status page; no decision depends on it
        case .released:
            workers[pid]?.released = true
            // Close removed listeners' sockets before anyone is told the reload is done.
            return [.closeUnusedSockets] + admitWaiting(slot: worker.slot, at: now) + announceHandovers(at: now)
        case let .failed(kind, reason):
            guard case .starting = worker.state else { return [] }
            if generations[worker.generation]?.state == .starting {
                return fail(worker.generation, kind, reason, at: now)
            }
            // A replacement could not start (a plugin file gone since?): it exits, and its
            // exit counts as a crash.
            return [.log(.error, "worker \(pid) (generation \(worker.generation)) could not start: \(reason)")]
        case .ready:
            guard case .starting = worker.state else { return [] }
            worker.state = .serving
            worker.lastAlive = now
            workers[pid] = worker
            return workerReady(worker, at: now)
        }
    }

    public mutating func exited(pid: pid_t, status: CInt, at now: NIODeadline) -> [SupervisorAction] {
        guard let worker = workers.removeValue(forKey: pid) else { return [] }
        let how = ProcessSpawner.describe(status: status)
        var actions: [SupervisorAction] = []
        if phase == .stopping || phase == .stopped {
            if !ProcessSpawner.exitedCleanly(status: status) { actions.append(.log(.warning, "worker \(pid) \(how)")) }
        } else if let generation = generations[worker.generation] {
            switch (worker.state, generation.state) {
            case (.starting, .starting):
                actions += fail(worker.generation, .listen, "worker \(pid) \(how) before it was ready", at: now)
            case (.starting, .serving), (.serving, .serving):
                actions.append(.log(.error, "worker \(pid) (generation \(worker.generation), slot \(worker.slot); "
                    + "plugins \(generation.settings.plugins)) \(how); its connections are lost, the other workers' are not"))
                actions += scheduleRespawn(worker.generation, slot: worker.slot, uptime: now - worker.startedAt, at: now)
            case (.leaving, _), (_, .draining), (_, .failed), (.serving, _):
                if !ProcessSpawner.exitedCleanly(status: status) {
                    actions.append(.log(.warning, "worker \(pid) of generation \(worker.generation) \(how) while leaving"))
                }
            }
        }
        return actions + [.closeUnusedSockets] + admitWaiting(slot: worker.slot, at: now) + announceHandovers(at: now)
            + collect(worker.generation, at: now)
    }

    /// SIGTERM/SIGINT: drain everything. A second one: close everything now.
    public mutating func terminate(at now: NIODeadline) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        if phase == .stopping {
            actions.append(.log(.notice, "second stop signal: closing every connection now"))
            for pid in workers.keys.sorted() {
                actions += leave(pid, .stop, at: now)
            }
            return actions
        }
        phase = .stopping
        for number in generations.keys.sorted() {
            generations[number]?.respawnAt.removeAll()
            if generations[number]?.state == .starting {
                generations[number]?.state = .failed
                actions.append(.failed(generation: number, .plugin, "the gateway is stopping"))
            }
        }
        for pid in workers.keys.sorted() {
            if case .starting = workers[pid]!.state {
                actions += leave(pid, .stop, at: now)
            } else {
                actions += leave(pid, .drain, at: now)
            }
        }
        return actions + finishIfEmpty()
    }

    /// Deadlines: respawns that are due, workers that never got ready, stalled or past their
    /// drain. Call it a few times a second.
    public mutating func tick(at now: NIODeadline) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        for number in generations.keys.sorted() where generations[number]!.state == .serving {
            for (slot, due) in generations[number]!.respawnAt.sorted(by: { $0.key < $1.key }) where due <= now {
                generations[number]!.respawnAt[slot] = nil
                actions.append(.spawn(generation: number, slot: slot))
            }
        }
        for pid in workers.keys.sorted() {
            let worker = workers[pid]!
            if let since = worker.waitingToAccept, now - since >= Self.handoverTimeout {
                actions.append(.log(.warning, "worker \(pid) starts accepting although the worker it replaces in slot "
                    + "\(worker.slot) has not said it stopped"))
                actions += accept(pid)
            }
            switch worker.state {
            case let .starting(deadline) where deadline <= now:
                actions += [.log(.error, "worker \(pid) did not report ready within "
                    + "\(Self.startTimeout.nanoseconds / 1_000_000_000) s"), .kill(pid)]
                workers[pid]!.state = .leaving(deadline: .distantFuture)
            case let .leaving(deadline) where deadline <= now:
                actions += [.log(.warning, "worker \(pid) of generation \(worker.generation) did not exit in time"),
                            .kill(pid)]
                workers[pid]!.state = .leaving(deadline: .distantFuture)
            case .serving:
                guard let stall = generations[worker.generation]?.settings.stallTimeout,
                      now - worker.lastAlive > stall else { continue }
                actions += [.log(.error, "worker \(pid) (generation \(worker.generation), slot \(worker.slot)): its "
                    + "event loops stopped answering \(stall.nanoseconds / 1_000_000) ms ago (a plugin blocking?); "
                    + "killing it"), .kill(pid)]
                workers[pid]!.lastAlive = .distantFuture
            default:
                continue
            }
        }
        return actions + announceHandovers(at: now)
    }

    // MARK: Transitions

    private mutating func workerReady(_ worker: Worker, at now: NIODeadline) -> [SupervisorAction] {
        guard let generation = generations[worker.generation] else { return [] }
        switch generation.state {
        case .serving:
            return [.log(.notice, "worker \(worker.pid) is back (generation \(worker.generation), slot \(worker.slot))")]
                + admit(worker.pid, at: now)
        case .starting:
            let ready = workers.values.filter { $0.generation == worker.generation && $0.state == .serving }.count
            guard ready == generation.settings.processes else { return [] }
            return promote(worker.generation, at: now)
        case .draining, .failed:
            return []
        }
    }

    /// `number` serves; the generation it replaces drains.
    private mutating func promote(_ number: Int, at now: NIODeadline) -> [SupervisorAction] {
        let replaced = servingGeneration
        generations[number]?.state = .serving
        phase = .running
        generations[number]?.pendingAnnouncement = (replaced, now)
        var actions: [SupervisorAction] = []
        if let replaced {
            generations[replaced]?.state = .draining
            generations[replaced]?.respawnAt.removeAll()
            for pid in workers.keys.sorted() where workers[pid]!.generation == replaced {
                actions += leave(pid, .retire, at: now)
            }
            actions += collect(replaced, at: now)
        }
        if holdingForHandover {
            actions.append(.handoverReady)
        } else {
            for pid in workers.keys.sorted() where workers[pid]!.generation == number {
                actions += admit(pid, at: now)
            }
        }
        // Long-lived connections must not pile up generations without bound.
        let maximum = generations[number]!.settings.maxGenerations
        let draining = generations.filter { $0.value.state == .draining }.keys.sorted()
        for old in draining.prefix(max(0, draining.count + 1 - maximum)) {
            actions.append(.log(.notice, "max_generations (\(maximum)) reached: closing generation \(old)'s "
                + "remaining connections now"))
            for pid in workers.keys.sorted() where workers[pid]!.generation == old {
                actions += leave(pid, .stop, at: now)
            }
        }
        return actions + announceHandovers(at: now)
    }

    private mutating func fail(_ number: Int, _ kind: GatewayError.Kind, _ reason: String,
                               at now: NIODeadline) -> [SupervisorAction] {
        guard generations[number]?.state == .starting else { return [] }
        generations[number]?.state = .failed
        var actions: [SupervisorAction] = [.failed(generation: number, kind, reason)]
        if phase == .starting {
            phase = .stopping
            exitCode = kind == .listen ? 1 : 2
        }
        for pid in workers.keys.sorted() where workers[pid]!.generation == number {
            actions += leave(pid, .stop, at: now)
        }
        return actions + collect(number, at: now)
    }

    private mutating func scheduleRespawn(_ number: Int, slot: Int, uptime: TimeAmount,
                                          at now: NIODeadline) -> [SupervisorAction] {
        guard var generation = generations[number] else { return [] }
        let delay = generation.restarts[slot].delay(afterCrashAt: now, uptime: uptime)
        var actions: [SupervisorAction] = []
        if delay == .zero {
            actions.append(.spawn(generation: number, slot: slot))
        } else {
            generation.respawnAt[slot] = now + delay
            actions.append(.suspend(generation: number, slot: slot))
            actions.append(.log(.critical, "slot \(slot) of generation \(number) is crash-looping "
                + "(\(generation.restarts[slot].recentCrashCount) crashes in 10 s): next start in "
                + "\(delay.nanoseconds / 1_000_000) ms; the other workers keep serving"))
        }
        generations[number] = generation
        return actions
    }

    /// Tells a worker to go (retire, drain or stop) and gives it until a deadline. Each
    /// message is firmer than the one before it; a softer one after a firmer one is moot.
    mutating func leave(_ pid: pid_t, _ message: SupervisorMessage, at now: NIODeadline) -> [SupervisorAction] {
        guard let worker = workers[pid] else { return [] }
        let firmness: [SupervisorMessage: Int] = [.retire: 1, .drain: 2, .stop: 3]
        if let told = worker.told, firmness[told, default: 0] >= firmness[message, default: 0], message != .stop {
            return []
        }
        let drain = generations[worker.generation]?.settings.drainTimeout ?? .zero
        let deadline = now + (message == .stop ? .zero : drain) + Self.leaveMargin
        if case let .leaving(earlier) = worker.state, earlier < deadline {
            workers[pid]!.state = .leaving(deadline: earlier)
        } else {
            workers[pid]!.state = .leaving(deadline: deadline)
        }
        workers[pid]!.told = message
        return [.send(message, to: pid)]
    }

    /// Forgets a generation that ended (drained or failed) once its last worker is gone.
    private mutating func collect(_ number: Int, at now: NIODeadline) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        if let state = generations[number]?.state, state == .draining || state == .failed,
           !workers.values.contains(where: { $0.generation == number }) {
            generations[number] = nil
            if phase != .stopping { actions.append(.release(generation: number)) }
        }
        return actions + finishIfEmpty()
    }

    mutating func finishIfEmpty() -> [SupervisorAction] {
        guard phase == .stopping, workers.isEmpty else { return [] }
        phase = .stopped
        return [.exit(exitCode)]
    }
}
