import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `connect_relay` without an upstream channel: the host opens the upstream socket itself
/// (`UpstreamSocket`), the pump watches the connect when it does not complete at once, and
/// the client's socket joins it in the pump once connected. A proxied connection then costs
/// one NIO channel (the client's) or none (a bare socket the pump accepted), not two, and
/// the upstream's descriptor is never searched for.
///
/// The client is held (`pumpHandoff`: no reads, its bytes kept) from the start. If the
/// connect fails it is an ordinary open stream again and the owner hears why, so it can try
/// another upstream. Once connected, the owner hears so first, the client's unsent writes go
/// out, its socket moves to the pump, and the end is reported as for any relay: the relay
/// callback, then the client's close notification.
final class UpstreamRelay: StreamRelay, PumpPairOwner {
    struct Target {
        let address: SocketAddress
        let timeout: TimeAmount
        let noDelay: Bool
        let keepalive: TCPKeepalive?
        let source: SocketAddress?
    }

    private enum State {
        /// The pump watches the upstream's connect.
        case connecting(PumpedPair, SocketPump)
        /// Connected; the client's unsent writes go out before its socket moves. `watched`:
        /// the pump already holds the pair (it saw the connect).
        case handingOff(PumpedPair, SocketPump, watched: Bool)
        case pumping(PumpedPair, SocketPump)
        /// Called off while the pump held the pair: its end report only closes the socket.
        case cancelled
        case done
    }

    let client: IOStreamHandler
    private let clientFD: CInt
    private let target: Target
    private let idleTimeout: TimeAmount?
    private let preface: [UInt8]
    private let accounting: UpstreamAccounting
    private let onConnected: (StreamError?) -> Void
    private let onDone: (RelayResult) -> Void
    private var state = State.done
    private var upstreamMeter: ByteMeter?
    /// Bytes that reached the pump already read (the preface, the client's buffered bytes):
    /// sent to the upstream, though the pump never read them.
    private var handedOver: UInt64 = 0

    var eventLoop: any EventLoop { client.loop.eventLoop }

    /// `clientFD`: the client's `pumpableDescriptor`, given to the pump only when the socket
    /// moves.
    init(client: IOStreamHandler, clientFD: CInt, target: Target, idleTimeout: TimeAmount?, preface: [UInt8],
         accounting: UpstreamAccounting, onConnected: @escaping (StreamError?) -> Void,
         onDone: @escaping (RelayResult) -> Void) {
        self.client = client
        self.clientFD = clientFD
        self.target = target
        self.idleTimeout = idleTimeout
        self.preface = preface
        self.accounting = accounting
        self.onConnected = onConnected
        self.onDone = onDone
    }

    func start(pump: SocketPump) {
        _ = client.attach(to: self, mode: .pumpHandoff)
        let idle = idleTimeout?.nanoseconds ?? 0
        let linger = client.closeLinger.nanoseconds
        switch UpstreamSocket.connect(to: target.address, noDelay: target.noDelay, source: target.source) {
        case let .failed(reason):
            connectFailed(reason)
        case let .connected(fd):
            let pair = PumpedPair(fdA: -1, fdB: fd, owner: self, idleTimeoutNanos: idle, closeLingerNanos: linger)
            pair.phase = .awaitingClient
            prepare(pair)
            connected(pair, pump, watched: false)
        case let .inProgress(fd):
            let deadline = Int64(client.loop.now.uptimeNanoseconds) + target.timeout.nanoseconds
            let pair = PumpedPair.connecting(upstream: fd, deadline: deadline, owner: self, idleTimeoutNanos: idle,
                                             closeLingerNanos: linger)
            // A channel sees its client leave; a bare socket needs the pump to look, through
            // a duplicate of its own, so the loop may close the client whenever it must.
            if client.bareSocket != nil { pair.watchedClient = SocketHandoff.duplicate(clientFD) ?? -1 }
            prepare(pair)
            state = .connecting(pair, pump)
            pump.send(.connect(pair))
        }
    }

    /// The upstream's keepalive (the pump sets it later) and the preface: set before the pair
    /// is shared with the pump, so no other thread touches it yet.
    private func prepare(_ pair: PumpedPair) {
        pair.upstreamKeepalive = target.keepalive
        guard !preface.isEmpty else { return }
        preface.withUnsafeBytes { pair.aToB.pending.append($0.baseAddress!, count: $0.count) }
        handedOver += UInt64(preface.count)
    }

    // MARK: The connect

    func pumpConnected() {
        guard case let .connecting(pair, pump) = state else { return }
        connected(pair, pump, watched: true)
    }

    private func connected(_ pair: PumpedPair, _ pump: SocketPump, watched: Bool) {
        upstreamMeter = accounting.connected(to: target.address, now: client.loop.now)
        state = .handingOff(pair, pump, watched: watched)
        client.loop.enqueue(.completion { [onConnected] in onConnected(nil) })
        if client.hasUnsentWrites {
            client.whenWritesSent { [self] sent in
                // A failed flush means the channel closed: `clientClosed` reports that.
                if sent { handOff() }
            }
        } else {
            handOff()
        }
    }

    private func connectFailed(_ reason: StreamError) {
        state = .done
        client.releaseFromRelay()
        accounting.failed(reason)
        client.loop.enqueue(.completion { [onConnected] in onConnected(reason) })
    }

    // MARK: The hand-over

    private func handOff() {
        guard case let .handingOff(pair, pump, watched) = state else { return }
        guard let (fd, tls) = client.descriptorForPump(clientFD) else {
            // Out of descriptors: the pair cannot be relayed, so both ends go.
            callOff(pair, pump, watched: watched)
            client.releaseFromRelay()
            client.close(reason: .io, graceful: false)
            finish(RelayResult(reason: .io, bytesAToB: 0, bytesBToA: 0))
            return
        }
        let regionWords = client.loop.metricsRegionWords
        let clientMeter = client.meter?.inPumpRegion(regionWords: regionWords)
        let detached = client.detachSocket()
        let buffered = detached.buffered?.readableBytes ?? 0
        if buffered > 0 { handedOver += UInt64(buffered) }
        // What the pump will write without having read it counts as sent now.
        upstreamMeter?.sent(Int(handedOver))
        let handover = ClientHandover(fd: fd, buffered: detached.buffered, inputEnded: detached.inputEnded, tls: tls,
                                      meter: clientMeter, upstreamMeter: upstreamMeter?.inPumpRegion(regionWords: regionWords),
                                      lifetimeDeadline: client.lifetimeDeadline.map { Int64($0.uptimeNanoseconds) })
        state = .pumping(pair, pump)
        if watched {
            pump.send(.attachClient(pair, handover))
        } else {
            pair.attachClient(handover) // not shared yet; `add` starts its clock
            pump.send(.add(pair))
        }
    }

    // MARK: StreamRelay (the client)

    func partnerWritable(of stream: IOStreamHandler) -> Bool { true }

    func stream(_ stream: IOStreamHandler, reported event: RelayEvent) {
        switch event {
        case let .closeRequested(reason, graceful): clientClosing(reason: reason, graceful: graceful)
        case let .channelClosed(reason): clientClosed(reason: reason)
        case let .setNoDelay(enabled):
            if case let .pumping(pair, pump) = state { pump.send(.setNoDelay(pair, side: 0, enabled)) }
        case .received, .inputEnded, .writabilityChanged: break // kept by the stream for the hand-over
        }
    }

    /// The owner (or the gateway, with a reason) closed or aborted the client.
    private func clientClosing(reason: StreamError?, graceful: Bool) {
        switch state {
        case let .connecting(pair, pump):
            callOff(pair, pump, watched: true)
            connectAbandoned(reason ?? .closed) { client.close(reason: reason, graceful: graceful) }
        case let .handingOff(pair, pump, watched):
            callOff(pair, pump, watched: watched)
            client.releaseFromRelay()
            client.close(reason: reason, graceful: graceful)
            finish(RelayResult(reason: reason ?? .closed, bytesAToB: 0, bytesBToA: 0))
        case let .pumping(pair, pump):
            pump.send(reason.map { .end(pair, $0) } ?? .close(pair, side: 0, abort: !graceful))
        case .cancelled, .done:
            break
        }
    }

    /// The client's channel closed before its socket moved (its peer left or reset).
    private func clientClosed(reason: StreamError?) {
        switch state {
        case let .connecting(pair, pump):
            callOff(pair, pump, watched: true)
            connectAbandoned(reason ?? .closed)
        case let .handingOff(pair, pump, watched):
            callOff(pair, pump, watched: watched)
            client.releaseFromRelay()
            finish(RelayResult(reason: reason ?? .closed, bytesAToB: 0, bytesBToA: 0))
        case .pumping, .cancelled, .done:
            break
        }
    }

    /// The connect is called off because the client went (or its owner closed it): not the
    /// upstream's failure. `close` closes the client first if it is still open.
    private func connectAbandoned(_ reason: StreamError, close: () -> Void = {}) {
        accounting.abandoned()
        client.releaseFromRelay()
        close()
        client.loop.enqueue(.completion { [onConnected] in onConnected(reason) })
    }

    /// Drops the upstream before the client joined it: the pump ends a pair it holds (and
    /// its report closes the socket); one it never saw is closed here.
    private func callOff(_ pair: PumpedPair, _ pump: SocketPump, watched: Bool) {
        if watched {
            state = .cancelled
            pump.send(.end(pair, .closed))
        } else {
            state = .done
            close(pair.b.fd)
        }
    }

    /// A relay that had connected ended before or after the hand-over.
    private func finish(_ result: RelayResult) {
        accounting.closed(received: result.bytesBToA, sent: result.bytesAToB &+ handedOver)
        client.loop.enqueue(.completion { [onDone] in onDone(result) })
    }

    // MARK: From the pump

    /// On the loop: the pair is over (or its connect failed, or it was called off).
    func pumpFinished(_ outcome: PumpOutcome) {
        switch state {
        case .connecting:
            outcome.openDescriptors.forEach(SocketHandoff.close)
            if outcome.clientLeft {
                // The pump saw the (bare) client reset: as `clientClosed`, the pair already gone.
                state = .done
                connectAbandoned(.connectionReset) { client.close(reason: .connectionReset, graceful: false) }
            } else {
                connectFailed(outcome.reason ?? .io)
            }
        case .cancelled:
            state = .done
            outcome.openDescriptors.forEach(SocketHandoff.close)
        case .handingOff:
            // Ended by the pump (shutdown) while the client's writes were still going out.
            state = .done
            outcome.openDescriptors.forEach(SocketHandoff.close)
            client.releaseFromRelay()
            client.close(reason: outcome.reason ?? .closed, graceful: false)
            finish(RelayResult(reason: outcome.reason ?? .closed, bytesAToB: 0, bytesBToA: 0))
        case .pumping:
            state = .done
            let result = RelayResult(reason: outcome.reason, bytesAToB: outcome.bytesAToB, bytesBToA: outcome.bytesBToA)
            client.loop.dispatch {
                accounting.closed(received: outcome.bytesBToA, sent: outcome.bytesAToB &+ handedOver)
                client.loop.enqueue(.completion { [onDone] in
                    onDone(result)
                    outcome.openDescriptors.forEach(SocketHandoff.close)
                })
                client.pumpEnded(reason: outcome.aReason, received: outcome.bytesAToB, sent: outcome.bytesBToA)
            }
        case .done:
            outcome.openDescriptors.forEach(SocketHandoff.close)
        }
    }
}
