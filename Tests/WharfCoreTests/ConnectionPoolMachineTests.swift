import NIOCore
import Testing
@testable import WharfCore

/// The pool's decisions with an injected clock: reuse, growth up to max_total, FIFO
/// waiting, connect failures, timeouts, dirty releases, lost connections and destruction.
@Suite struct ConnectionPoolMachineTests {
    typealias Machine = ConnectionPoolMachine

    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// The machine behind a reference, so a test reads as a sequence of events and the
    /// actions each one causes.
    final class Pool {
        var machine: Machine

        init(maxTotal: Int = 2, maxIdle: Int? = nil, idle: Int64 = 60_000, acquire: Int64 = 1_000,
             maxWaiting: Int = 100) {
            machine = Machine(limits: .init(maxTotal: maxTotal, maxIdle: maxIdle ?? maxTotal,
                                            idleTimeout: .milliseconds(idle), acquireTimeout: .milliseconds(acquire),
                                            maxWaiting: maxWaiting))
        }

        func acquire(_ waiter: Int, now: NIODeadline = start) -> Bool { machine.acquire(waiter, now: now) }
        func connected(_ id: Int, now: NIODeadline = start) { machine.connected(id, now: now) }
        func connectFailed(_ reason: StreamError) { machine.connectFailed(reason) }
        @discardableResult
        func released(_ id: Int, reusable: Bool, now: NIODeadline = start) -> Bool {
            machine.released(id, reusable: reusable, now: now)
        }
        func lost(_ id: Int) { machine.lost(id) }
        func expire(now: NIODeadline) { machine.expire(now: now) }
        func destroy() { machine.destroy() }

        /// Every action the events so far have queued.
        func actions() -> [Machine.Action] {
            var actions: [Machine.Action] = []
            while let action = machine.next() { actions.append(action) }
            return actions
        }
    }

    @Test func firstAcquireConnectsAndTheConnectionIsReused() {
        let pool = Pool()
        #expect(pool.acquire(1))
        #expect(pool.actions() == [.connect])
        pool.connected(100)
        #expect(pool.actions() == [.hand(100, to: 1)])
        #expect(pool.released(100, reusable: true))
        #expect(pool.actions() == [])
        #expect(pool.acquire(2))
        #expect(pool.actions() == [.hand(100, to: 2)], "an idle connection is handed out at once")
        #expect(pool.machine.total == 1)
    }

    @Test func growsToMaxTotalThenWaitersQueueInOrder() {
        let pool = Pool(maxTotal: 2)
        for waiter in 1...4 { #expect(pool.acquire(waiter)) }
        #expect(pool.actions() == [.connect, .connect], "never more than max_total")
        pool.connected(100)
        pool.connected(101)
        #expect(pool.actions() == [.hand(101, to: 1), .hand(100, to: 2)])
        pool.released(100, reusable: true)
        #expect(pool.actions() == [.hand(100, to: 3)], "the oldest waiter first")
        pool.released(101, reusable: true)
        #expect(pool.actions() == [.hand(101, to: 4)])
        #expect(pool.machine.total == 2 && pool.machine.waitingCount == 0)
    }

    @Test func aDirtyReleaseClosesTheConnectionAndMakesRoomForANewOne() {
        let pool = Pool(maxTotal: 1)
        _ = pool.acquire(1)
        _ = pool.acquire(2)
        #expect(pool.actions() == [.connect])
        pool.connected(100)
        #expect(pool.actions() == [.hand(100, to: 1)])
        pool.released(100, reusable: false)
        #expect(pool.actions() == [.close(100), .connect])
        #expect(!pool.released(100, reusable: true), "a second release is refused")
    }

    @Test func aFailedConnectFailsTheOldestUncoveredWaiter() {
        let pool = Pool(maxTotal: 1)
        _ = pool.acquire(1)
        _ = pool.acquire(2)
        #expect(pool.actions() == [.connect])
        pool.connectFailed(.refused)
        #expect(pool.actions() == [.fail(1, .refused), .connect], "the next waiter gets a new attempt")
        pool.connectFailed(.refused)
        #expect(pool.actions() == [.fail(2, .refused)])
        #expect(pool.machine.total == 0)
    }

    @Test func waitersTimeOutAtTheirDeadline() {
        let pool = Pool(maxTotal: 1, acquire: 500)
        _ = pool.acquire(1)
        #expect(pool.actions() == [.connect])
        pool.connected(100)
        _ = pool.actions()
        _ = pool.acquire(2, now: Self.start + .milliseconds(100))
        #expect(pool.machine.nextDeadline == Self.start + .milliseconds(600))
        pool.expire(now: Self.start + .milliseconds(599))
        #expect(pool.actions() == [])
        pool.expire(now: Self.start + .milliseconds(600))
        #expect(pool.actions() == [.fail(2, .timedOut)])
        #expect(pool.machine.nextDeadline == nil)
    }

    @Test func idleConnectionsAgeOutOldestFirst() {
        let pool = Pool(maxTotal: 2, idle: 1_000)
        _ = pool.acquire(1)
        _ = pool.acquire(2)
        _ = pool.actions()
        pool.connected(100)
        pool.connected(101)
        _ = pool.actions()
        pool.released(101, reusable: true)
        pool.released(100, reusable: true, now: Self.start + .milliseconds(500))
        #expect(pool.machine.nextDeadline == Self.start + .milliseconds(1_000))
        pool.expire(now: Self.start + .milliseconds(1_000))
        #expect(pool.actions() == [.close(101)])
        pool.expire(now: Self.start + .milliseconds(1_500))
        #expect(pool.actions() == [.close(100)])
        #expect(pool.machine.total == 0)
    }

    @Test func keepsNoMoreThanMaxIdle() {
        let pool = Pool(maxTotal: 3, maxIdle: 1)
        for waiter in 1...3 { _ = pool.acquire(waiter) }
        _ = pool.actions()
        for id in 100...102 { pool.connected(id) }
        _ = pool.actions()
        for id in 100...102 { pool.released(id, reusable: true) }
        #expect(pool.actions() == [.close(100), .close(101)], "the oldest surplus goes")
        #expect(pool.machine.idleCount == 1)
    }

    @Test func aLostConnectionIsForgotten() {
        let pool = Pool(maxTotal: 1)
        _ = pool.acquire(1)
        _ = pool.actions()
        pool.connected(100)
        _ = pool.actions()
        pool.released(100, reusable: true)
        pool.lost(100) // the idle upstream sent bytes or closed
        #expect(pool.machine.total == 0)
        _ = pool.acquire(2)
        #expect(pool.actions() == [.connect], "never handed out: a new one is made")
    }

    @Test func refusesWaitersBeyondMaxWaiting() {
        let pool = Pool(maxTotal: 1, maxWaiting: 2)
        #expect(pool.acquire(1))
        #expect(pool.acquire(2))
        #expect(!pool.acquire(3))
    }

    @Test func destroyFailsWaitersClosesIdleAndClosesInUseOnRelease() {
        let pool = Pool(maxTotal: 2)
        for waiter in 1...3 { _ = pool.acquire(waiter) }
        _ = pool.actions()
        pool.connected(100)
        _ = pool.actions()
        pool.destroy()
        #expect(pool.actions() == [.fail(2, .shuttingDown), .fail(3, .shuttingDown)])
        pool.connected(101)
        #expect(pool.actions() == [.close(101)], "a connect that finishes after destroy is closed")
        pool.released(100, reusable: true)
        #expect(pool.actions() == [.close(100)])
        #expect(!pool.acquire(4))
        #expect(pool.machine.total == 0)
    }
}
