import NIOCore

/// Every clock on one stream, as plain values: when each limit expires, given what happened
/// and when. Times come in as arguments (the event loop's `now`), so tests drive them with a
/// virtual clock.
///
/// One slot on the loop's `DeadlineWheel` serves them all: the handler arms it at `next` and
/// only ever moves it earlier. Activity pushes the idle deadline later without touching the
/// wheel, so a busy stream costs no timer work per read; a slot that fires early re-arms.
struct StreamDeadlines {
    enum Expiry: Equatable {
        case closeLinger
        case handshake
        case lifetime
        case idle
        /// The listener's read_timeout_ms, counted from the first byte of the message.
        case read
        /// A deadline the plugin put on its reads (`set_read_timeout`).
        case pluginRead
    }

    let timeouts: StreamTimeouts
    private(set) var openedAt: NIODeadline
    private(set) var lastActivity: NIODeadline
    /// Idle and lifetime are watched while the stream is open or relayed through its channel.
    var guarding = false
    var handshake: NIODeadline?
    var closeLinger: NIODeadline?
    /// When the first byte of the pending, still unsatisfied read arrived.
    private(set) var messageStarted: NIODeadline?
    /// The plugin's per-read limit, and the pending read's deadline under it.
    var pluginReadTimeout: TimeAmount?
    private(set) var pluginRead: NIODeadline?

    init(timeouts: StreamTimeouts, now: NIODeadline) {
        self.timeouts = timeouts
        self.openedAt = now
        self.lastActivity = now
    }

    mutating func opened(now: NIODeadline) {
        openedAt = now
        lastActivity = now
        handshake = nil
        guarding = true
    }

    mutating func activity(now: NIODeadline) {
        lastActivity = now
    }

    /// A read started: under a plugin read limit it gets its own deadline.
    mutating func readStarted(now: NIODeadline) {
        pluginRead = pluginReadTimeout.map { now + $0 }
    }

    /// The pending read waits with `buffered` bytes of its message already here.
    mutating func readWaiting(buffered: Int, now: NIODeadline) {
        if buffered > 0, messageStarted == nil { messageStarted = now }
    }

    /// The pending read completed, failed or was taken away.
    mutating func readEnded() {
        messageStarted = nil
        pluginRead = nil
    }

    /// Nothing but the close linger (and a handshake in flight) matters once closing.
    mutating func stopGuarding() {
        guarding = false
        readEnded()
    }

    mutating func clearAll() {
        stopGuarding()
        handshake = nil
        closeLinger = nil
    }

    var lifetimeDeadline: NIODeadline? { timeouts.lifetime.map { openedAt + $0 } }

    /// The earliest deadline still ahead of the stream, if any.
    var next: NIODeadline? {
        var earliest: NIODeadline?
        func consider(_ deadline: NIODeadline?) {
            guard let deadline else { return }
            if earliest == nil || deadline < earliest! { earliest = deadline }
        }
        consider(closeLinger)
        consider(handshake)
        consider(pluginRead)
        if let started = messageStarted, let read = timeouts.read { consider(started + read) }
        if guarding {
            if let idle = timeouts.idle { consider(lastActivity + idle) }
            if let lifetime = timeouts.lifetime { consider(openedAt + lifetime) }
        }
        return earliest
    }

    /// The most serious limit that has passed at `now`, if any. The caller acts on it and
    /// asks again: several may pass together.
    func expired(now: NIODeadline) -> Expiry? {
        if let closeLinger, closeLinger <= now { return .closeLinger }
        if let handshake, handshake <= now { return .handshake }
        if guarding, let lifetime = timeouts.lifetime, openedAt + lifetime <= now { return .lifetime }
        if guarding, let idle = timeouts.idle, lastActivity + idle <= now { return .idle }
        if let started = messageStarted, let read = timeouts.read, started + read <= now { return .read }
        if let pluginRead, pluginRead <= now { return .pluginRead }
        return nil
    }
}
