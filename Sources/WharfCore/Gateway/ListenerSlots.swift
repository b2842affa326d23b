import NIOCore

/// What holds accepted connections until `max_connections` has room for them; told on the
/// listener's loop when a slot may have freed.
protocol HeldAccepts: AnyObject, Sendable {
    /// Lets the waiting connections go on while slots last; true while some still wait.
    func admitHeld() -> Bool
}

/// A listening channel's accepted connections under a `max_connections` share (queue mode).
/// Each takes its slot here, before it goes on to be set up. Past the share, the ones NIO has
/// already accepted in the same read (up to its messages per read) wait here, neither counted
/// nor seen by a plugin, until slots free up, and the gate stops further accepts at once.
/// Before, the count was taken in each connection's initializer and the pause reached the
/// listening channel a hop later, so a burst of accepts went past the share. (A relay pump's
/// listener takes its slot before `accept` itself: `PumpListener`.)
final class ListenerSlots: ChannelInboundHandler, HeldAccepts, @unchecked Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let limit: ConnectionLimit
    private let gate: AcceptGate
    /// In order of accept; at most NIO's messages per read. The listener's loop only.
    private var held: [any Channel] = []
    private var context: ChannelHandlerContext?

    init(limit: ConnectionLimit, gate: AcceptGate) {
        self.limit = limit
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closeHeld()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeHeld()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if held.isEmpty, limit.reserve() { return context.fireChannelRead(data) }
        held.append(unwrapInboundIn(data))
        gate.set(.atLimit, true)
    }

    func admitHeld() -> Bool {
        guard let context else { return false }
        while !held.isEmpty, limit.reserve() {
            context.fireChannelRead(wrapInboundOut(held.removeFirst()))
        }
        return !held.isEmpty
    }

    /// The listener is going away: connections that never started are closed, uncounted.
    private func closeHeld() {
        let waiting = held
        held.removeAll()
        waiting.forEach { $0.close(promise: nil) }
    }
}
