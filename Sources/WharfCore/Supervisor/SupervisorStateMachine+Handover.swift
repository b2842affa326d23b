import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Hand-overs: which worker may accept from a slot's sockets, and when a new generation (or a
/// new supervisor, after a binary upgrade) counts as serving. Two processes never accept from
/// one socket: a new worker starts paused and is admitted once the one it replaces in its slot
/// has released the sockets, or has gone.
extension SupervisorStateMachine {
    /// The old supervisor's workers stopped accepting (or it is gone): ours may begin.
    public mutating func releaseHandover(at now: NIODeadline) -> [SupervisorAction] {
        guard holdingForHandover else { return [] }
        holdingForHandover = false
        var actions: [SupervisorAction] = []
        for pid in workers.keys.sorted() where workers[pid]!.state == .serving {
            actions += admit(pid, at: now)
        }
        return actions + announceHandovers(at: now)
    }

    /// A binary upgrade: the new supervisor serves, so every worker retires (keeps its
    /// connections until they end or drain_timeout_ms) and this supervisor exits after the
    /// last one.
    public mutating func retireAll(at now: NIODeadline) -> [SupervisorAction] {
        guard phase == .running else { return [] }
        phase = .stopping
        var actions: [SupervisorAction] = []
        for number in generations.keys.sorted() {
            generations[number]?.respawnAt.removeAll()
        }
        for pid in workers.keys.sorted() {
            actions += leave(pid, .retire, at: now)
        }
        return actions + finishIfEmpty()
    }

    /// No worker may still be accepting.
    public var everyWorkerReleased: Bool { workers.values.allSatisfy { !$0.accepting || $0.released } }

    /// A reload is done (and `wharf reload` answers) when the new generation accepts
    /// everywhere and nothing older still does, so a connection made after the answer meets
    /// the new config. A worker that does not let go in time is not waited for.
    mutating func announceHandovers(at now: NIODeadline) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        for number in generations.keys.sorted() {
            guard let pending = generations[number]?.pendingAnnouncement else { continue }
            let own = workers.values.filter { $0.generation == number }
            let handedOver = own.count == generations[number]!.settings.processes && own.allSatisfy(\.accepting)
                && !workers.values.contains { $0.generation != number && $0.accepting && !$0.released }
            guard handedOver || now - pending.since >= Self.handoverTimeout else { continue }
            generations[number]?.pendingAnnouncement = nil
            actions.append(.serving(generation: number, replaced: pending.replaced))
        }
        return actions
    }

    /// Lets a ready worker accept, unless a worker of another generation may still be
    /// accepting from its slot's sockets; then it waits for that one's `released` (or exit).
    mutating func admit(_ pid: pid_t, at now: NIODeadline) -> [SupervisorAction] {
        guard let worker = workers[pid], !worker.accepting, !holdingForHandover else { return [] }
        let occupied = workers.values.contains {
            $0.slot == worker.slot && $0.generation != worker.generation && $0.accepting && !$0.released
        }
        if occupied {
            workers[pid]!.waitingToAccept = now
            return []
        }
        return accept(pid)
    }

    mutating func accept(_ pid: pid_t) -> [SupervisorAction] {
        workers[pid]!.accepting = true
        workers[pid]!.waitingToAccept = nil
        return [.send(.accept, to: pid)]
    }

    mutating func admitWaiting(slot: Int, at now: NIODeadline) -> [SupervisorAction] {
        workers.values.filter { $0.slot == slot && $0.waitingToAccept != nil }.map(\.pid).sorted()
            .flatMap { admit($0, at: now) }
    }
}
