/// What the stream's state says without changing it: whether it may be pooled or relayed.
extension StreamStateMachine {
    /// Open, with no read pending, nothing buffered unread or unsent, both directions open,
    /// no upgrade under way and no read ever timed out: the next user would start from a
    /// clean connection.
    func isReusable(hasUnsentWrites: Bool) -> Bool {
        state == .open && !reads.hasPendingRead && reads.bufferedBytes == 0 && !hasUnsentWrites
            && !outputShutDown && !reads.inputEnded && tlsUpgrade == nil && !readTimedOut
    }

    /// Whether this stream can be handed to a relay now.
    var relayRefusal: StreamError? {
        if isRelayed { return .relayed }
        guard state == .open else { return .closed }
        return reads.hasPendingRead ? .busy : nil
    }
}
