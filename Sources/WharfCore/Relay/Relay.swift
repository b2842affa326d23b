import NIOCore

/// Where a relay begins: checks the pair and picks how its bytes will move.
enum Relay {
    /// Hands `a` and `b` to a relay. Both must be open, on one loop, with no read pending and
    /// not already relayed. Plain TCP goes to the socket pump; TLS bytes must pass through
    /// their channel's TLS handler, so those pairs relay through NIO.
    ///
    /// Each stream's own idle timeout (the listener's) still applies: the pair ends at the
    /// earliest of the owner's `idleTimeout` and the two streams' own.
    static func start(_ a: IOStreamHandler, _ b: IOStreamHandler, idleTimeout: TimeAmount?,
                      onDone: @escaping (RelayResult) -> Void) -> StreamError? {
        guard a !== b else { return .invalidArgument }
        guard a.loop === b.loop else { return .wrongThread }
        if let refusal = a.relayRefusal ?? b.relayRefusal { return refusal }
        // Both relays start from channels; only connect_relay hands a bare socket over as it is.
        guard a.liveContext != nil, b.liveContext != nil else { return .closed }
        let idle = earliest(idleTimeout, earliest(a.idleTimeout, b.idleTimeout))
        if a.isPumpable, b.isPumpable {
            PumpRelay(a: a, b: b, idleTimeout: idle, closeLinger: min(a.closeLinger, b.closeLinger),
                      onDone: onDone).start()
        } else {
            ChannelRelay(a: a, b: b, idleTimeout: idleTimeout, onDone: onDone).start()
        }
        return nil
    }
}
