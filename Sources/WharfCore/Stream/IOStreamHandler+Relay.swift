import NIOCore

/// What relays ask of a stream: attaching, moving bytes through the channel, handing the
/// socket to the pump and hearing its end. The relays themselves live in Relay/.
extension IOStreamHandler {
    /// Why this stream cannot be relayed now, if it cannot.
    var relayRefusal: StreamError? { machine.relayRefusal }
    /// Plain TCP with both directions open: the pump can carry it as raw bytes.
    var isPumpable: Bool { !hasTLS && machine.isPumpable }
    /// `isPumpable`, or TLS that the pump terminated and can carry on as `connect_relay`'s
    /// client (side a of its pair).
    var isPumpableAsClient: Bool { (!hasTLS || bareSocket?.tls != nil) && machine.isPumpable }
    var hasInputEnded: Bool { machine.reads.inputEnded }
    var isWritable: Bool { machine.writable }
    /// The stream's own (listener's) idle limit and close linger, which a relay honours too.
    var idleTimeout: TimeAmount? { machine.deadlines.timeouts.idle }
    var closeLinger: TimeAmount { machine.deadlines.timeouts.closeLinger }

    /// Hands the stream to `relay` (again, when a pump hand-over falls back to the channel
    /// relay); bytes it had buffered go to the channel relay first.
    func attach(to relay: any StreamRelay, mode: StreamStateMachine.RelayMode) -> ByteBuffer? {
        self.relay = relay
        machine.attachRelay(mode)
        return mode == .channel ? machine.takeBufferedForRelay() : nil
    }

    /// The hand-over to the pump did not happen: an ordinary open stream again.
    func releaseFromRelay() {
        relay = nil
        machine.relayReleased()
    }

    /// Writes bytes the channel relay moved from the partner.
    func sendRelayed(_ buffer: ByteBuffer) {
        guard machine.state == .relayed(.channel), !machine.outputShutDown, let context else { return }
        machine.noteActivity(now: now)
        countSent(buffer.readableBytes)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
    }

    /// The partner's peer sent FIN: pass it on once our pending bytes are out.
    func relayShutdownOutput() {
        if machine.relayShutdownOutput() { shutdownOutputWhenFlushed() }
    }

    var hasShutDownOutput: Bool { machine.outputShutDown }

    /// The socket went to the pump at some point.
    var wasPumped: Bool { detachedAddresses != nil }

    /// When the stream must end at the latest (max_lifetime_ms), for the pump to keep.
    var lifetimeDeadline: NIODeadline? { machine.deadlines.lifetimeDeadline }

    /// The descriptor under this stream, for the pump: its bare socket (no channel built),
    /// else the channel's as `SocketHandoff` finds it; nil if it cannot be found.
    var pumpableDescriptor: CInt? {
        if let bareSocket { return bareSocket.fd }
        return channel.flatMap(SocketHandoff.descriptor(of:))
    }

    /// `fd` (from `pumpableDescriptor`) for the pump to own: the bare socket itself, which
    /// the stream gives up, or a close-on-exec duplicate of the channel's (which the channel
    /// closes in `detachSocket`). Nil if no descriptor is left to duplicate into.
    /// The pump's TLS session goes with a bare socket.
    func descriptorForPump(_ fd: CInt) -> (fd: CInt, tls: PumpTLSSession?)? {
        if let bare = bareSocket, bare.fd == fd {
            bareSocket = nil
            return (fd, bare.tls)
        }
        return SocketHandoff.duplicate(fd).map { ($0, nil) }
    }

    /// Gives the socket to the pump: what was read and not delivered goes with it, and the
    /// channel closes its own descriptor (the pump holds a duplicate).
    func detachSocket() -> (buffered: ByteBuffer?, inputEnded: Bool) {
        if let channel = context?.channel { facts.detachedAddresses = (channel.localAddress, channel.remoteAddress) }
        let handover = machine.detachForPump()
        cancelTimer()
        context?.close(promise: nil)
        return handover
    }

    /// The pump ended the relay and closed the socket, having moved `received` bytes from
    /// this stream's peer and `sent` to it.
    func pumpEnded(reason: StreamError?, received: UInt64, sent: UInt64) {
        // The pump counted these in its own region of the metrics as they moved.
        bytesReceived &+= received
        bytesSent &+= sent
        if machine.pumpEnded(reason: reason) { loop.enqueue(.notifyClosed(self)) }
    }
}
