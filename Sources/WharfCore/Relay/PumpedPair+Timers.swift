/// A pair's deadlines, as the pump's timer check asks about them: the connect timeout, the
/// upstream's keepalive still to set, the lifetime, the close linger and the idle limit.
extension PumpedPair {
    enum TimerCheck {
        /// A deadline passed: the pair ended so.
        case ended(PumpOutcome)
        /// Nothing is due; look again then (nil: no deadline, or nothing for the pump to do).
        case next(Int64?)
    }

    func checkTimers(now: Int64) -> TimerCheck {
        switch phase {
        case let .connecting(deadline):
            return now >= deadline ? .ended(end(.timedOut)) : .next(deadline)
        case .awaitingClient:
            return .next(nil) // the loop hands the client over at once, or ends the pair
        case .relaying:
            break
        }
        var earliest = armKeepaliveIfDue(now: now)
        func due(_ deadline: Int64?) -> Bool {
            guard let deadline else { return false }
            if now >= deadline { return true }
            earliest = min(earliest ?? .max, deadline)
            return false
        }
        if due(lifetimeDeadline) { return .ended(end(.lifetimeExceeded)) }
        if due(closingDeadline) { return .ended(end(.timedOut)) }
        if idleTimeoutNanos > 0, closingDeadline == nil, due(lastActivity + idleTimeoutNanos) {
            return .ended(end(.timedOut))
        }
        return .next(earliest)
    }
}
