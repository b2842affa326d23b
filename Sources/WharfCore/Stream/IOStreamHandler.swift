import NIOCore
import NIOSSL
import NIOTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection's channel handler: it feeds channel and owner events to the stream's
/// `StreamStateMachine` and carries out the actions it returns. It decides nothing itself.
///
/// The channel runs with autoRead off; this handler alone decides when to read the socket.
/// Its deadlines wait on the loop's `DeadlineWheel`, one slot per stream.
final class IOStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let loop: LoopContext
    let streamID: UInt64
    let isClient: Bool
    /// Whether a drain waits for this stream. Loop-level streams (a plugin's own connects
    /// and pools) do not hold a drain up; they end with their plugin instance.
    let holdsDrain: Bool
    /// TCP keepalive of the stream's socket, which an upstream connect inherits.
    let keepalive: TCPKeepalive?
    /// See `StreamOptions.maxWriteBufferSize` (0: none).
    let maxWriteBufferSize: Int
    /// Every decision about the stream. Mutated only here and in this handler's extensions
    /// beside it in Stream/ (relay and TLS hooks); everything else only reads it.
    var machine: StreamStateMachine
    private(set) var context: ChannelHandlerContext?
    /// Hears of every completion and of the end; told nothing after `streamClosed` or
    /// `streamAbandoned` (the machine is finished by then).
    let owner: any StreamOwner
    /// What the preamble or the connect established. Most plain streams have none, so the
    /// facts live in a box made on first write: 8 bytes a connection instead of ~90. A write
    /// changes the one fact in place; reading `facts` copies them all (every optional address
    /// and string retained, then released: ~300 instructions), so the hot paths read one
    /// fact through the accessors below.
    var facts: ConnectionFacts {
        get { factsBox?.facts ?? ConnectionFacts() }
        _modify {
            if factsBox == nil { factsBox = FactsBox(ConnectionFacts()) }
            yield &factsBox!.facts
        }
    }
    private var factsBox: FactsBox?
    /// The TLS handshake finished.
    var hasTLS: Bool { factsBox?.facts.tls != nil }
    var tlsFacts: TLSFacts? { factsBox?.facts.tls }
    var serverName: String? { factsBox?.facts.serverName }
    var proxiedHeader: ProxyProtocolHeader? { factsBox?.facts.proxied }
    var connectHost: String? { factsBox?.facts.connectHost }
    /// The socket's addresses, kept since it went to the pump (or never had a channel).
    var detachedAddresses: (local: SocketAddress?, remote: SocketAddress?)? { factsBox?.facts.detachedAddresses }
    /// The relay this stream is attached to (the machine's state says how).
    var relay: (any StreamRelay)?
    /// The bytes being handed to a read completion right now (see `DeliveredBytes`).
    private var delivering: DeliveredBytes?
    /// Where the stream sits in its loop's `StreamSet` (nil until open, and once finished).
    var streamSetIndex: Int?
    /// Where the stream sits on its loop's `DeadlineWheel`, and for which deadline.
    var wheelSlot: DeadlineWheel.Slot?
    var armedDeadline: NIODeadline?
    /// Where the stream counts the bytes it reads and writes (its listener's counters).
    var meter: ByteMeter?
    /// This stream's own totals, for its access-log line (a pumped relay adds its share at
    /// the end).
    var bytesReceived: UInt64 = 0
    var bytesSent: UInt64 = 0
    /// Why a connection that never opened ended, with the error behind it.
    var abandonError: (any Error)?
    /// An accepted socket no channel holds yet (see IOStreamHandler+BareSocket).
    var bareSocket: BareSocket?

    init(loop: LoopContext, options: StreamOptions, streamID: UInt64, isClient: Bool = false,
         awaiting: Preamble = [], holdsDrain: Bool = true, owner: any StreamOwner) {
        self.loop = loop
        self.streamID = streamID
        self.isClient = isClient
        self.holdsDrain = holdsDrain
        self.keepalive = options.keepalive
        self.maxWriteBufferSize = options.maxWriteBufferSize
        self.owner = owner
        self.machine = StreamStateMachine(awaiting: awaiting, maxBufferSize: options.maxBufferSize,
                                          timeouts: options.timeouts, now: loop.eventLoop.now)
    }

    /// The wheel holds streams unowned: a stream never leaves with a deadline still armed.
    deinit {
        if wheelSlot != nil { loop.deadlines.remove(self) }
        bareSocket?.close()
    }

    var channel: (any Channel)? { context?.channel }

    /// What the stream was opened with, rebuilt from where each part lives (an upstream
    /// connect inherits its origin's): nothing is stored twice per connection.
    var options: StreamOptions {
        StreamOptions(maxBufferSize: machine.reads.maxBufferSize, timeouts: machine.deadlines.timeouts,
                      keepalive: keepalive, maxWriteBufferSize: maxWriteBufferSize)
    }
    var now: NIODeadline { loop.now }
    var localAddress: SocketAddress? { detachedAddresses.map(\.local) ?? channel?.localAddress }
    var remoteAddress: SocketAddress? { detachedAddresses.map(\.remote) ?? channel?.remoteAddress }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate() }
    }

    /// The context references this handler; dropping our reference breaks the cycle so the
    /// channel, its pipeline and this handler are freed.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        cancelTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        activate()
        context.fireChannelActive()
    }

    private func activate() {
        switch machine.activate(now: now) {
        case .none: return
        case .open: open()
        case .readPreamble:
            updateReadDemand()
            rearmTimer() // the handshake deadline
        }
    }

    /// A preamble step (the PROXY header, the TLS handshake) is done.
    func preambleStepDone(_ step: Preamble) {
        if machine.preambleStepDone(step, now: now) { open() }
    }

    func open() {
        if holdsDrain { loop.streamOpened(self) }
        loop.dispatch {
            if !owner.streamOpened(self) { close(reason: nil, graceful: false) }
        }
        updateReadDemand()
        rearmTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The clock is read here, once, and the dispatch that serves the read keeps it.
        let now = self.now
        let buffer = Self.unwrapInboundIn(data)
        countReceived(buffer.readableBytes)
        carryOut(machine.received(buffer, now: now), at: now)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        machine.readComplete()
        updateReadDemand()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let header = event as? ProxyProtocolHeader {
            facts.proxied = header
            preambleStepDone(.proxyHeader)
        } else if let event = event as? TLSUserEvent, case let .handshakeCompleted(alpn) = event {
            tlsEstablished(context: context, alpn: alpn)
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            carryOut(machine.inputClosed())
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer that closes TCP without close_notify: an ordinary end of input here, as
        // for plain TCP (the input-closed event follows).
        if let error = error as? NIOSSLError, case .uncleanShutdown = error { return }
        let reason = StreamError(channelError: error)
        switch machine.errorCaught(reason) {
        case .none: break
        case .abandon: abandon(error)
        case let .close(reason, failingUpgrade):
            if let token = failingUpgrade {
                TLSLog.logger.info("start_tls handshake failed", metadata: ["stream": "\(streamID)", "error": "\(error)"])
                completeUpgrade(token, reason)
            }
            close(reason: reason, graceful: false)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        machine.writabilityChanged(context.channel.isWritable, now: now)
        relay?.stream(self, reported: .writabilityChanged)
        updateReadDemand()
        closeIfDrainedAndIdle()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        channelEnded()
        context.fireChannelInactive()
    }

    /// The socket is gone: the channel closed, or one could not be built for a bare socket.
    /// A second report changes nothing.
    func channelEnded() {
        cancelTimer()
        switch machine.channelInactive() {
        case .none:
            break
        case let .abandoned(reason):
            let error = abandonError
            abandonError = nil
            owner.streamAbandoned(self, reason: reason, error: error)
        case let .closed(serviceRead, failingUpgrade, tellRelay):
            if let token = failingUpgrade { completeUpgrade(token, .closed) }
            if tellRelay, let relay {
                let reason = machine.closeReason
                loop.dispatch { relay.stream(self, reported: .channelClosed(reason)) }
            }
            // Resolve the pending read first, then the last word; writes that NIO failed
            // while closing were queued before either.
            if serviceRead { loop.enqueue(.serviceRead(self)) }
            loop.enqueue(.notifyClosed(self))
        }
    }

    func abandon(_ error: (any Error)?) {
        abandonError = error
        if let context {
            context.close(promise: nil)
        } else {
            closeBare(reset: false, failed: false)
        }
    }

    private func carryOut(_ action: StreamStateMachine.InboundAction, at time: NIODeadline? = nil) {
        switch action {
        case .none: break
        case .serviceRead: loop.dispatch(at: time) { serviceRead() }
        case let .forwardToRelay(bytes):
            if let relay { loop.dispatch { relay.stream(self, reported: .received(bytes)) } }
        case .forwardEndToRelay:
            if let relay { loop.dispatch { relay.stream(self, reported: .inputEnded) } }
        case .abandon: abandon(nil)
        }
    }

    // MARK: Reading

    /// Asks the socket for data when the machine wants it.
    func updateReadDemand() {
        guard context != nil || bareSocket != nil else { return }
        let partnerWritable = relay?.partnerWritable(of: self) ?? true
        if machine.shouldRequestSocketRead(partnerWritable: partnerWritable) { liveContext?.read() }
    }

    func startRead(_ request: ReadRequest, token: CompletionToken) -> StreamError? {
        if let refusal = machine.startRead(request, token: token, now: now) { return refusal }
        if case .serviceRead = machine.readStartedAction() {
            loop.enqueue(.serviceRead(self))
        } else {
            waitForBytes()
        }
        return nil
    }

    /// Completes the pending read if the buffer (or a close) decides it. Runs inside the
    /// loop's dispatcher, so the completion it makes is never nested in a host call.
    func serviceRead() {
        switch machine.serviceRead(now: now) {
        case .none:
            waitForBytes()
            return
        case let .deliver(data, token):
            data.withUnsafeReadableBytes { bytes in
                if let base = bytes.baseAddress { delivering = DeliveredBytes(buffer: data, base: base) }
                owner.streamRead(self, token, .success(bytes))
                delivering = nil
            }
        case let .fail(error, token, closeReason):
            owner.streamRead(self, token, .failure(error))
            close(reason: closeReason, graceful: true)
        }
        updateReadDemand()
    }

    /// The pending read waits for the socket: arm its deadlines, ask for bytes, and close
    /// now if the gateway is draining and this was the stream's last work.
    private func waitForBytes() {
        rearmTimer()
        updateReadDemand()
        closeIfDrainedAndIdle()
    }

    /// The plugin's limit on each read from now on (nil: none).
    func setReadTimeout(_ timeout: TimeAmount?) -> StreamError? {
        machine.setReadTimeout(timeout)
    }

    // MARK: Writing and closing

    /// Queues bytes; `token` (if any) hears when they reach the kernel.
    func write(_ bytes: UnsafeRawBufferPointer, token: CompletionToken?) -> StreamError? {
        if let refusal = machine.write(now: now) { return refusal }
        guard let context = liveContext else { return .closed }
        if maxWriteBufferSize > 0, wouldOverflow(adding: bytes.count, context) {
            close(reason: .writeBufferFull, graceful: false)
            return .writeBufferFull
        }
        countSent(bytes.count)
        send(outboundBuffer(for: bytes, allocator: context.channel.allocator), token: token, context: context)
        return nil
    }

    private func send(_ buffer: ByteBuffer, token: CompletionToken?, context: ChannelHandlerContext) {
        guard let token else {
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
            return
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { result in
            var failure: StreamError?
            if case let .failure(error) = result {
                let cause = self.machine.closeReason ?? StreamError(channelError: error)
                failure = cause == .connectionReset ? .connectionReset : .closed
            }
            self.loop.enqueue(.writeDone(self, token, failure))
        }
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: promise)
    }

    func writeDone(_ token: CompletionToken, _ error: StreamError?) {
        guard machine.state != .finished else { return }
        owner.streamWrote(self, token, error)
    }

    /// The bytes to send: a shared slice when they lie inside the read being delivered,
    /// else a copy.
    private func outboundBuffer(for bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        if let slice = delivering?.slice(covering: bytes) { return slice }
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Closes the stream. Graceful: flush pending writes first (bounded by close linger).
    /// `resetPeer`: see `StreamStateMachine.close`.
    func close(reason: StreamError?, graceful: Bool, resetPeer: Bool = false) {
        switch machine.close(reason: reason, graceful: graceful, resetPeer: resetPeer, now: now) {
        case .none:
            return
        case .forwardToRelay:
            relay?.stream(self, reported: .closeRequested(reason, graceful: graceful))
            return
        case let .closeWhenFlushed(serviceRead):
            if serviceRead { loop.enqueue(.serviceRead(self)) }
            // Nothing is ever unsent on a bare socket (a write builds the channel).
            if bareSocket != nil { return closeBare(reset: false, failed: false) }
            let context = liveContext
            whenWritesSent { _ in context?.close(promise: nil) }
        case let .closeNow(reset, serviceRead):
            if serviceRead { loop.enqueue(.serviceRead(self)) }
            if bareSocket != nil { return closeBare(reset: reset, failed: reason == .connectionReset) }
            // `connectionReset`: the socket itself failed (reset, aborted, broken pipe), so
            // nothing more can be said over it.
            if reset || reason == .connectionReset {
                closeBeneathTLS(reset: reset)
            } else {
                liveContext?.close(promise: nil)
            }
        }
        rearmTimer()
    }

    /// Closes the socket at once, under TLS from below the TLS handler, so no close_notify
    /// goes out: after an abort it would tell the peer the stream ended whole, and after the
    /// socket failed it cannot be sent (NIOSSL's attempt, a write that fails and its error
    /// path, cost more than the rest of the close). `reset`: RST, unsent data dropped.
    private func closeBeneathTLS(reset: Bool) {
        guard let context = liveContext else { return }
        if reset {
            _ = (context.channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
        }
        // Only a stream whose handshake finished is looked through (a miss would throw).
        let tls = hasTLS ? try? context.pipeline.syncOperations.context(handlerType: NIOSSLHandler.self) : nil
        (tls ?? context).close(promise: nil)
    }

    /// The stream's last word: after this the stream does nothing more.
    func notifyClosed() {
        guard let (reason, leftover) = machine.finish() else { return }
        relay = nil // the relay references both streams; this breaks the cycle
        if let leftover { owner.streamRead(self, leftover, .failure(reason ?? .closed)) }
        owner.streamClosed(self, reason: reason)
        loop.streamFinished(self)
    }
}

extension IOStreamHandler: DeadlineOwner {}

/// See `IOStreamHandler.facts`.
final class FactsBox {
    var facts: ConnectionFacts
    init(_ facts: ConnectionFacts) { self.facts = facts }
}

@available(*, unavailable)
extension IOStreamHandler: Sendable {}
