import NIOCore
import Synchronization

/// Whether a listening channel accepts. Several things may each want it paused: the worker
/// has not been told to accept yet, the listener is at `max_connections`, or descriptors ran
/// out. Each sets or clears its own reason; the channel accepts only when none holds, so one
/// reason ending never undoes another. Used on the listening channel's event loop only
/// (hence unchecked: others hop there first).
final class AcceptGate: @unchecked Sendable {
    struct Reasons: OptionSet {
        let rawValue: Int
        static let notStarted = Reasons(rawValue: 1)
        static let atLimit = Reasons(rawValue: 2)
        static let backoff = Reasons(rawValue: 4)
    }

    private var reasons: Reasons
    /// Turns accepting on or off where the listener accepts.
    private var turn: ((Bool) -> Void)?

    init(paused: Reasons) { reasons = paused }

    /// A listening channel: accepting is its autoRead.
    func attach(_ channel: any Channel) {
        turn = { [weak channel] accepting in
            guard let channel, channel.isActive else { return }
            try? channel.syncOptions?.setOption(.autoRead, value: accepting)
        }
    }

    /// Anything else that accepts (a relay pump's listener).
    func attach(turning turn: @escaping (Bool) -> Void) { self.turn = turn }

    func set(_ reason: Reasons, _ holds: Bool) {
        let before = reasons.isEmpty
        if holds { reasons.insert(reason) } else { reasons.remove(reason) }
        guard before != reasons.isEmpty else { return }
        turn?(reasons.isEmpty)
    }

    func holds(_ reason: Reasons) -> Bool { reasons.contains(reason) }
}

/// `max_connections` for one listener in one worker process: its share of the listener's
/// limit. Past it, accepting pauses (the rest wait in the backlog) or, with `on_limit:
/// reject`, a new connection is closed at once. Counted from accept to the stream's last word
/// (a relayed stream stays counted while the pump carries it).
final class ConnectionLimit: AcceptSlots {
    let share: Int
    let rejects: Bool
    let active = Atomic<Int>(0)
    /// The listening channel's loop and gate, set when it starts, and what holds its
    /// accepted connections past the share (a listening channel's `ListenerSlots`).
    private let gate = Mutex<(loop: (any EventLoop)?, gate: AcceptGate?, held: (any HeldAccepts)?)>((nil, nil, nil))

    init(maximum: Int, processes: Int, rejects: Bool) {
        share = max(1, (maximum + processes - 1) / processes)
        self.rejects = rejects
    }

    func attach(_ gate: AcceptGate, on loop: any EventLoop, held: (any HeldAccepts)? = nil) {
        self.gate.withLock { $0 = (loop, gate, held) }
    }

    /// A connection was accepted: false if it must be closed (reject mode, over the share).
    /// `reserved`: its slot was taken before it got here (`reserve`).
    func admit(reserved: Bool = false) -> Bool {
        if reserved { return true }
        let now = active.add(1, ordering: .relaxed).newValue
        if now > share, rejects {
            active.subtract(1, ordering: .relaxed)
            return false
        }
        if now >= share, !rejects { update() }
        return true
    }

    /// An admitted connection ended.
    func ended() {
        let now = active.subtract(1, ordering: .relaxed).newValue
        if now == share - 1, !rejects { update() }
    }

    /// A slot for one more connection, taken before the connection goes on (queue mode): by
    /// a relay pump before it accepts, by a listening channel's `ListenerSlots` as NIO hands
    /// it the accepted connection. A pause from the loop arrives late (the pump accepts on
    /// its own thread; a listening channel accepts a few per read): under load connections
    /// went past the share before it came. False at the share: the pump stops watching the
    /// listener and calls `pumpPaused`; the channel holds the connection.
    func reserve() -> Bool {
        var current = active.load(ordering: .relaxed)
        while current < share {
            let (exchanged, seen) = active.compareExchange(expected: current, desired: current + 1,
                                                           ordering: .relaxed)
            if exchanged {
                if current + 1 >= share { update() }
                return true
            }
            current = seen
        }
        return false
    }

    /// A reserved slot the pump did not use (nothing was left to accept).
    func unreserve() { ended() }

    /// The pump stopped accepting at the share on its own. The gate is told it is paused,
    /// then set by the count as it is by then: a slot freed meanwhile (whose `ended` found
    /// the gate open, with nothing to resume) resumes the pump at once.
    func pumpPaused() {
        let (loop, gate) = self.gate.withLock { ($0.loop, $0.gate) }
        guard let loop, let gate else { return }
        let share = self.share
        loop.execute {
            gate.set(.atLimit, true)
            gate.set(.atLimit, self.active.load(ordering: .relaxed) >= share)
        }
    }

    /// Pauses or resumes accepting by the count when it runs, on the listener's loop, after
    /// the connections held for a slot have taken the ones free.
    private func update() {
        let (loop, gate, held) = self.gate.withLock { ($0.loop, $0.gate, $0.held) }
        guard let loop, let gate else { return }
        let share = self.share
        loop.execute {
            let holding = held?.admitHeld() ?? false
            gate.set(.atLimit, holding || self.active.load(ordering: .relaxed) >= share)
        }
    }
}
