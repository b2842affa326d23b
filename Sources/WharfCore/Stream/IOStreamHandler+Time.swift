import NIOCore

/// Time on a stream: the gateway's drain, and the deadlines the machine keeps, carried out
/// through the loop's `DeadlineWheel`.
extension IOStreamHandler {
    // MARK: Draining

    /// The gateway is draining: close now if idle, else as soon as the stream is.
    func quiesce() {
        machine.quiesce()
        closeIfDrainedAndIdle()
    }

    func closeIfDrainedAndIdle() {
        if machine.shouldCloseForDrain { close(reason: .shuttingDown, graceful: true) }
    }

    // MARK: Timer

    /// Puts the stream on its loop's deadline wheel at the machine's earliest deadline,
    /// moving it only earlier: a deadline that moved later (activity) is found when the
    /// wheel reaches the old one, so a busy stream does no timer work per read.
    func rearmTimer() {
        guard let next = machine.nextDeadline else { return }
        if let armed = armedDeadline, armed <= next { return }
        armedDeadline = next
        loop.deadlines.schedule(self, at: next)
    }

    func cancelTimer() {
        armedDeadline = nil
        loop.deadlines.remove(self)
    }

    func deadlineReached() {
        armedDeadline = nil
        loop.dispatch { timerFired() }
    }

    private func timerFired() {
        let now = self.now
        while true {
            switch machine.timerFired(now: now) {
            case .none:
                rearmTimer()
                return
            case .abandon:
                abandon(nil)
            case let .close(reason, graceful, failingUpgrade):
                if let token = failingUpgrade { completeUpgrade(token, reason) }
                close(reason: reason, graceful: graceful)
            case let .failRead(token):
                owner.streamRead(self, token, .failure(.timedOut))
                updateReadDemand()
            }
        }
    }
}
