import NIOCore

/// Two streams on one loop pumping into each other through their NIO channels, with the
/// owner out of the data path. This is the relay for streams the socket pump cannot take:
/// TLS (the bytes must pass through the TLS handler) or a socket NIO will not hand over.
///
/// - Zero copy: a received buffer is written to the partner as is.
/// - Backpressure both ways: a side's socket is read only while its partner can take
///   writes, so a slow reader throttles the other peer through TCP, and memory per pair
///   stays bounded by the write high-water mark plus one read.
/// - Half-close: a FIN from one peer becomes a shutdown of the partner's output; the relay
///   ends when both directions have ended, on a socket error, a close by the owner, or
///   `idleTimeout` with no byte in either direction.
final class ChannelRelay: StreamRelay {
    let a: IOStreamHandler
    let b: IOStreamHandler
    private let idleTimeout: TimeAmount?
    private let onDone: (RelayResult) -> Void
    private var bytesAToB: UInt64 = 0
    private var bytesBToA: UInt64 = 0
    private var aEnded = false
    private var bEnded = false
    private var finished = false
    private var lastActivity: NIODeadline
    /// The idle check's place on the loop's deadline wheel (not a NIO task: a loop with a
    /// scheduled task checks its timer heap on every turn, which every relayed message paid).
    var wheelSlot: DeadlineWheel.Slot?

    init(a: IOStreamHandler, b: IOStreamHandler, idleTimeout: TimeAmount?, onDone: @escaping (RelayResult) -> Void) {
        self.a = a
        self.b = b
        self.idleTimeout = idleTimeout
        self.onDone = onDone
        self.lastActivity = a.loop.now
    }

    func partner(of stream: IOStreamHandler) -> IOStreamHandler { stream === a ? b : a }

    func partnerWritable(of stream: IOStreamHandler) -> Bool { partner(of: stream).isWritable }

    /// Takes over both streams (afresh, or from a pump hand-over that could not happen):
    /// bytes they had buffered but not delivered go first.
    func start() {
        let buffered = [a, b].map { $0.attach(to: self, mode: .channel) }
        for (stream, pending) in zip([a, b], buffered) {
            if let pending { received(pending, from: stream) }
            if stream.hasInputEnded { inputEnded(on: stream) }
        }
        a.updateReadDemand()
        b.updateReadDemand()
        scheduleIdleCheck()
    }

    func stream(_ stream: IOStreamHandler, reported event: RelayEvent) {
        switch event {
        case let .received(buffer): received(buffer, from: stream)
        case .inputEnded: inputEnded(on: stream)
        case .writabilityChanged: partner(of: stream).updateReadDemand()
        case let .channelClosed(reason): streamClosed(stream, reason: reason)
        case .closeRequested, .setNoDelay: break // handled by the stream itself
        }
    }

    private func received(_ buffer: ByteBuffer, from stream: IOStreamHandler) {
        guard !finished else { return }
        let count = UInt64(buffer.readableBytes)
        if stream === a { bytesAToB += count } else { bytesBToA += count }
        lastActivity = a.loop.now
        partner(of: stream).sendRelayed(buffer)
    }

    private func inputEnded(on stream: IOStreamHandler) {
        guard !finished else { return }
        if stream === a { aEnded = true } else { bEnded = true }
        partner(of: stream).relayShutdownOutput()
        if aEnded && bEnded { finish(reason: nil) }
    }

    /// A stream closed (error, peer reset, a timeout of its own, or the owner's close) before
    /// both directions ended: the relay is over, and the other side is closed too.
    private func streamClosed(_ stream: IOStreamHandler, reason: StreamError?) {
        // A clean close of a stream whose output we had shut down is its peer's FIN: NIO may
        // report the channel closed before (or instead of) the input-closed event.
        if reason == nil, stream.hasShutDownOutput, !finished {
            inputEnded(on: stream)
        }
        finish(reason: reason ?? (aEnded && bEnded ? nil : .closed))
    }

    private func finish(reason: StreamError?) {
        guard !finished else { return }
        finished = true
        if wheelSlot != nil { a.loop.deadlines.remove(self) }
        let result = RelayResult(reason: reason, bytesAToB: bytesAToB, bytesBToA: bytesBToA)
        let graceful = reason == nil || reason == .closed
        // A reset is passed on as a reset, as the pump does: a FIN (or close_notify) would
        // make a cut-off stream look whole. The side that was reset is closed already.
        let reset = reason == .connectionReset
        // The owner hears of the end before either socket closes, as with the pump.
        a.loop.enqueue(.completion { [a, b, onDone] in
            onDone(result)
            a.close(reason: reason, graceful: graceful, resetPeer: reset)
            b.close(reason: reason, graceful: graceful, resetPeer: reset)
        })
    }

    private func scheduleIdleCheck() {
        guard let idleTimeout, !finished else { return }
        a.loop.deadlines.schedule(self, at: lastActivity + idleTimeout)
    }
}

extension ChannelRelay: DeadlineOwner {
    /// The idle deadline as it was when set: bytes since then push it back.
    func deadlineReached() {
        guard let idleTimeout, !finished else { return }
        if a.loop.eventLoop.now >= lastActivity + idleTimeout {
            a.loop.dispatch { finish(reason: .timedOut) }
        } else {
            scheduleIdleCheck()
        }
    }
}
