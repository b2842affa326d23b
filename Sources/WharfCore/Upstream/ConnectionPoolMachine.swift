import NIOCore

/// Every decision of a connection pool, as a plain value: which waiting acquire gets which
/// connection, when to open one more, which to close, which acquire fails and why. It
/// performs no I/O and reads no clock. Its driver reports events, then takes the work
/// they caused from `next()` one action at a time until there is none.
///
/// Idle connections are reused newest first, so a pool larger than the load lets the
/// surplus age out at the front. Waiters are served oldest first.
struct ConnectionPoolMachine {
    struct Limits: Equatable {
        var maxTotal = 10
        var maxIdle = 10
        var idleTimeout: TimeAmount = .seconds(60)
        var acquireTimeout: TimeAmount = .seconds(10)
        var maxWaiting = 100_000
    }

    typealias ConnectionID = Int
    typealias WaiterID = Int

    enum Action: Equatable {
        /// Give this connection to this waiter (it is now in use).
        case hand(ConnectionID, to: WaiterID)
        /// Open one more connection; report `connected` or `connectFailed`.
        case connect
        /// Close this connection; the pool has already forgotten it.
        case close(ConnectionID)
        /// Complete this acquire with an error.
        case fail(WaiterID, StreamError)
    }

    private struct Waiter {
        let id: WaiterID
        let deadline: NIODeadline
    }

    private struct Idle {
        let id: ConnectionID
        let since: NIODeadline
    }

    let limits: Limits
    private var waiters = CircularBuffer<Waiter>()
    /// Oldest first; reuse takes from the back.
    private var idle: [Idle] = []
    private var inUse = Set<ConnectionID>()
    private var connecting = 0
    private var failures = CircularBuffer<(WaiterID, StreamError)>()
    private var closing = CircularBuffer<ConnectionID>()
    private(set) var isDestroyed = false

    init(limits: Limits) {
        self.limits = limits
    }

    /// Connections open or being opened.
    var total: Int { idle.count + inUse.count + connecting }
    var idleCount: Int { idle.count }
    var inUseCount: Int { inUse.count }
    var waitingCount: Int { waiters.count }

    // MARK: Events

    /// An acquire arrives. False if it is refused at once: too many are waiting already.
    mutating func acquire(_ waiter: WaiterID, now: NIODeadline) -> Bool {
        guard !isDestroyed, waiters.count < limits.maxWaiting else { return false }
        waiters.append(Waiter(id: waiter, deadline: now + limits.acquireTimeout))
        return true
    }

    /// A connection `next()` asked for is open.
    mutating func connected(_ connection: ConnectionID, now: NIODeadline) {
        connecting -= 1
        if isDestroyed {
            closing.append(connection)
        } else {
            idle.append(Idle(id: connection, since: now))
        }
    }

    /// A connection `next()` asked for could not be made: the oldest waiter that no other
    /// pending connect will serve hears why.
    mutating func connectFailed(_ reason: StreamError) {
        connecting -= 1
        if waiters.count > connecting, let first = waiters.popFirst() {
            failures.append((first.id, reason))
        }
    }

    /// The user gives a connection back; `reusable`: it is clean (see `pool_release`).
    /// Returns false if the connection was not in use (given back twice, or unknown).
    @discardableResult
    mutating func released(_ connection: ConnectionID, reusable: Bool, now: NIODeadline) -> Bool {
        guard inUse.remove(connection) != nil else { return false }
        if reusable, !isDestroyed {
            idle.append(Idle(id: connection, since: now))
        } else {
            closing.append(connection)
        }
        return true
    }

    /// A connection ended by itself: an idle one received bytes or EOF, or one in use
    /// closed. The pool forgets it.
    mutating func lost(_ connection: ConnectionID) {
        if inUse.remove(connection) != nil { return }
        idle.removeAll { $0.id == connection }
    }

    /// Time passed: waiters past their deadline fail, idle connections past theirs close.
    mutating func expire(now: NIODeadline) {
        while let first = waiters.first, first.deadline <= now {
            waiters.removeFirst()
            failures.append((first.id, .timedOut))
        }
        while let oldest = idle.first, oldest.since + limits.idleTimeout <= now {
            idle.removeFirst()
            closing.append(oldest.id)
        }
    }

    /// pool_destroy (or the instance's shutdown): waiters fail, idle connections close, and
    /// connections in use close when they come back.
    mutating func destroy() {
        guard !isDestroyed else { return }
        isDestroyed = true
        while let waiter = waiters.popFirst() { failures.append((waiter.id, .shuttingDown)) }
        closing.append(contentsOf: idle.map(\.id))
        idle.removeAll()
    }

    // MARK: Work

    /// The next thing to do, or nil when the pool is settled.
    mutating func next() -> Action? {
        if let (waiter, reason) = failures.popFirst() { return .fail(waiter, reason) }
        if let connection = closing.popFirst() { return .close(connection) }
        if !waiters.isEmpty, let newest = idle.popLast() {
            let waiter = waiters.removeFirst()
            inUse.insert(newest.id)
            return .hand(newest.id, to: waiter.id)
        }
        if !isDestroyed, waiters.count > connecting, total < limits.maxTotal {
            connecting += 1
            return .connect
        }
        if idle.count > limits.maxIdle {
            return .close(idle.removeFirst().id)
        }
        return nil
    }

    /// When `expire` next has something to do.
    var nextDeadline: NIODeadline? {
        let waiter = waiters.first?.deadline
        let connection = idle.first.map { $0.since + limits.idleTimeout }
        switch (waiter, connection) {
        case let (w?, c?): return min(w, c)
        case let (w?, nil): return w
        case let (nil, c?): return c
        case (nil, nil): return nil
        }
    }
}
