import Testing
@testable import WharfCore

/// What the pump's timer check finds on one pair, as plain values (no sockets are touched:
/// an ended pair hands its descriptors back for the loop to close).
struct PumpedPairTimerTests {
    static func pair(idle: Int64 = 0) -> PumpedPair {
        PumpedPair(fdA: 1, fdB: 2, owner: PumpTokenTests.Owner(), idleTimeoutNanos: idle, closeLingerNanos: 50)
    }

    static func reason(_ check: PumpedPair.TimerCheck) -> StreamError?? {
        if case let .ended(outcome) = check { return .some(outcome.reason) }
        return nil
    }

    @Test func anIdlePairEndsAtItsLimitAndNotBefore() {
        let pair = Self.pair(idle: 100)
        pair.lastActivity = 0
        guard case .next(100) = pair.checkTimers(now: 50) else { Issue.record("due at 100"); return }
        #expect(Self.reason(pair.checkTimers(now: 100)) == .some(.timedOut))
    }

    @Test func theEarliestDeadlineIsTheNextLook() {
        let pair = Self.pair(idle: 100)
        pair.lifetimeDeadline = 70
        guard case .next(70) = pair.checkTimers(now: 10) else { Issue.record("the lifetime comes first"); return }
        #expect(Self.reason(pair.checkTimers(now: 70)) == .some(.lifetimeExceeded))
    }

    @Test func aClosingPairIsBoundByItsLingerNotItsIdleLimit() {
        let pair = Self.pair(idle: 10)
        pair.beginClosing(side: 0, abort: false, now: 0) // linger 50
        guard case .next(50) = pair.checkTimers(now: 20) else { Issue.record("the linger, not idle"); return }
        #expect(Self.reason(pair.checkTimers(now: 50)) == .some(.timedOut))
    }

    @Test func aConnectTimesOutAndAWaitingPairHasNoDeadline() {
        let connecting = PumpedPair.connecting(upstream: 2, deadline: 30, owner: PumpTokenTests.Owner(),
                                               idleTimeoutNanos: 0, closeLingerNanos: 0)
        guard case .next(30) = connecting.checkTimers(now: 0) else { Issue.record("the connect deadline"); return }
        #expect(Self.reason(connecting.checkTimers(now: 30)) == .some(.timedOut))
        let waiting = Self.pair(idle: 10)
        waiting.phase = .awaitingClient
        guard case .next(nil) = waiting.checkTimers(now: 1_000) else { Issue.record("nothing to time"); return }
    }
}
