import NIOCore

/// The event loop's side of a relay run by the `SocketPump`.
///
/// It hands both sockets over once the streams' unsent writes are out, so bytes the owner
/// wrote before calling relay keep their place. It forwards the owner's close and abort to
/// the pump. When the pump reports the end, it finishes both streams: the relay callback
/// first, then each stream's close notification. If a socket cannot be handed over (NIO
/// would not show it), the relay runs as a `ChannelRelay` instead.
final class PumpRelay: StreamRelay, PumpPairOwner {
    private enum State {
        case handingOff(waitingForWrites: Int)
        case pumping(PumpedPair, SocketPump)
        case done
    }

    let a: IOStreamHandler
    let b: IOStreamHandler
    private let idleTimeout: TimeAmount?
    private let closeLinger: TimeAmount
    private let onDone: (RelayResult) -> Void
    private var state = State.handingOff(waitingForWrites: 0)

    var eventLoop: any EventLoop { a.loop.eventLoop }

    init(a: IOStreamHandler, b: IOStreamHandler, idleTimeout: TimeAmount?, closeLinger: TimeAmount,
         onDone: @escaping (RelayResult) -> Void) {
        self.a = a
        self.b = b
        self.idleTimeout = idleTimeout
        self.closeLinger = closeLinger
        self.onDone = onDone
    }

    func start() {
        _ = a.attach(to: self, mode: .pumpHandoff)
        _ = b.attach(to: self, mode: .pumpHandoff)
        var waiting = 0
        for stream in [a, b] where stream.hasUnsentWrites {
            waiting += 1
            stream.whenWritesSent { [self] sent in writesSent(sent) }
        }
        state = .handingOff(waitingForWrites: waiting)
        if waiting == 0 { handOff() }
    }

    func partnerWritable(of stream: IOStreamHandler) -> Bool { true }

    func stream(_ stream: IOStreamHandler, reported event: RelayEvent) {
        switch event {
        case let .closeRequested(reason, graceful): close(stream, reason: reason, graceful: graceful)
        case let .channelClosed(reason): streamClosed(stream, reason: reason)
        case let .setNoDelay(enabled): setNoDelay(stream, enabled)
        case .received, .inputEnded, .writabilityChanged: break // kept by the stream for the hand-over
        }
    }

    private func writesSent(_ sent: Bool) {
        // A failed flush means the channel closed: `streamClosed` reports that.
        guard sent, case let .handingOff(waiting) = state else { return }
        state = .handingOff(waitingForWrites: waiting - 1)
        if waiting == 1 { handOff() }
    }

    private func handOff() {
        guard let pump = a.loop.pump.running(), let sockets = Self.duplicateSockets(a, b) else {
            fallBack()
            return
        }
        let pair = PumpedPair(fdA: sockets.a, fdB: sockets.b, owner: self,
                              idleTimeoutNanos: idleTimeout?.nanoseconds ?? 0, closeLingerNanos: closeLinger.nanoseconds)
        // Both clocks are CLOCK_MONOTONIC, so the streams' deadline carries over as is.
        let regionWords = a.loop.metricsRegionWords
        pair.a.meter = a.meter?.inPumpRegion(regionWords: regionWords)
        pair.b.meter = b.meter?.inPumpRegion(regionWords: regionWords)
        pair.lifetimeDeadline = earliest(a.lifetimeDeadline, b.lifetimeDeadline)
            .map { Int64($0.uptimeNanoseconds) }
        let fromA = a.detachSocket()
        let fromB = b.detachSocket()
        // Bytes read before the hand-over go out through the pump: counted as sent here.
        fromA.buffered?.withUnsafeReadableBytes {
            pair.aToB.pending.append($0.baseAddress!, count: $0.count)
            b.countSent($0.count)
        }
        fromB.buffered?.withUnsafeReadableBytes {
            pair.bToA.pending.append($0.baseAddress!, count: $0.count)
            a.countSent($0.count)
        }
        pair.aToB.sourceEnded = fromA.inputEnded
        pair.bToA.sourceEnded = fromB.inputEnded
        state = .pumping(pair, pump)
        pump.send(.add(pair))
    }

    /// Both sockets or neither: a failure after the first duplicate closes it again.
    private static func duplicateSockets(_ a: IOStreamHandler, _ b: IOStreamHandler) -> (a: CInt, b: CInt)? {
        guard let channelA = a.channel, let channelB = b.channel,
              let fdA = SocketHandoff.descriptor(of: channelA), let fdB = SocketHandoff.descriptor(of: channelB),
              let copyA = SocketHandoff.duplicate(fdA) else { return nil }
        guard let copyB = SocketHandoff.duplicate(fdB) else {
            SocketHandoff.close(copyA)
            return nil
        }
        return (copyA, copyB)
    }

    private func fallBack() {
        state = .done
        ChannelRelay(a: a, b: b, idleTimeout: idleTimeout, onDone: onDone).start()
    }

    private func side(of stream: IOStreamHandler) -> Int { stream === a ? 0 : 1 }
    private func partner(of stream: IOStreamHandler) -> IOStreamHandler { stream === a ? b : a }

    /// The owner (or the gateway, with a reason) closed one of the streams.
    private func close(_ stream: IOStreamHandler, reason: StreamError?, graceful: Bool) {
        switch state {
        case .handingOff:
            endBeforeHandoff(reason: reason ?? .closed)
            stream.close(reason: reason, graceful: graceful)
            partner(of: stream).close(reason: reason ?? .closed, graceful: true)
        case let .pumping(pair, pump):
            if let reason {
                pump.send(.end(pair, reason))
            } else {
                pump.send(.close(pair, side: side(of: stream), abort: !graceful))
            }
        case .done:
            break
        }
    }

    /// A stream's channel closed while its unsent writes were still going out.
    private func streamClosed(_ stream: IOStreamHandler, reason: StreamError?) {
        guard case .handingOff = state else { return }
        endBeforeHandoff(reason: reason ?? .closed)
        partner(of: stream).close(reason: reason ?? .closed, graceful: reason == nil)
    }

    /// The hand-over did not happen: both streams are ordinary streams again, closing.
    private func endBeforeHandoff(reason: StreamError) {
        state = .done
        a.releaseFromRelay()
        b.releaseFromRelay()
        let result = RelayResult(reason: reason, bytesAToB: 0, bytesBToA: 0)
        a.loop.enqueue(.completion { [onDone] in onDone(result) })
    }

    private func setNoDelay(_ stream: IOStreamHandler, _ enabled: Bool) {
        guard case let .pumping(pair, pump) = state else { return }
        pump.send(.setNoDelay(pair, side: side(of: stream), enabled))
    }

    /// Both sockets were connected before the pump saw them.
    func pumpConnected() {}

    /// On the event loop, from the pump: the relay is over and both sockets are closed.
    func pumpFinished(_ outcome: PumpOutcome) {
        guard case .pumping = state else { return }
        state = .done
        let result = RelayResult(reason: outcome.reason, bytesAToB: outcome.bytesAToB, bytesBToA: outcome.bytesBToA)
        a.loop.dispatch {
            a.loop.enqueue(.completion { [onDone] in
                onDone(result)
                outcome.openDescriptors.forEach(SocketHandoff.close)
            })
            a.pumpEnded(reason: outcome.aReason, received: outcome.bytesAToB, sent: outcome.bytesBToA)
            b.pumpEnded(reason: outcome.bReason, received: outcome.bytesBToA, sent: outcome.bytesAToB)
        }
    }
}
