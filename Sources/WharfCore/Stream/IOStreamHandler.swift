import CWharf
import NIOCore
import NIOSSL
import NIOTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-stream settings a listener (or an upstream connect) hands down.
public struct StreamOptions: Sendable {
    public var maxBufferSize: Int
    /// How long a graceful close may wait for pending writes to drain before it aborts.
    public var closeLinger: TimeAmount
    /// The bound on a connection's preamble (PROXY header, TLS handshake) and on start_tls.
    public var handshakeTimeout: TimeAmount
    /// The listener's TLS, for start_tls on an accepted stream.
    public var serverTLS: ServerTLS?

    public init(maxBufferSize: Int = 104_857_600, closeLinger: TimeAmount = .seconds(10),
                handshakeTimeout: TimeAmount = .seconds(10), serverTLS: ServerTLS? = nil) {
        self.maxBufferSize = maxBufferSize
        self.closeLinger = closeLinger
        self.handshakeTimeout = handshakeTimeout
        self.serverTLS = serverTLS
    }
}

/// What must finish on a new connection before the plugin sees it.
public struct Preamble: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let proxyHeader = Preamble(rawValue: 1)
    public static let tlsHandshake = Preamble(rawValue: 2)
}

/// What the connection's preamble established.
public struct ConnectionFacts {
    /// Addresses announced by a PROXY protocol header.
    public var proxied: ProxyProtocolHeader?
    /// The SNI name the client asked for, or (outgoing) the one sent.
    public var serverName: String?
    public var tls: TLSFacts?
}

/// One connection as plugins see it: the channel handler that carries out what
/// `IOStreamStateMachine` decides and talks to plugin code through C callbacks.
///
/// The channel runs with autoRead off; this handler alone decides when to read the socket.
public final class IOStreamHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    enum Lifecycle {
        case starting
        case open
        /// Close requested: reads refused, flushing writes (or aborting).
        case closing
        /// The socket belongs to the relay pump; the channel is gone, the handle lives on
        /// until the pump reports the end.
        case pumped
        /// The channel is closed; the close notification is queued.
        case closed
        /// The close notification has run; the handle is dead.
        case finished
    }

    let loop: LoopContext
    let options: StreamOptions
    public let streamID: UInt64
    public let isClient: Bool
    private(set) var machine: IOStreamStateMachine
    private(set) var lifecycle = Lifecycle.starting
    /// The `wharf_stream *` plugins see; nil until the stream is open.
    public private(set) var handle: OpaquePointer?
    private(set) var context: ChannelHandlerContext?

    private var readCallback: wharf_read_cb?
    private var readUserdata: UnsafeMutableRawPointer?
    private var serviceScheduled = false
    private var closeCallback: wharf_close_cb?
    private var closeUserdata: UnsafeMutableRawPointer?
    private(set) var userContext: UnsafeMutableRawPointer?
    private var userContextFree: wharf_context_free_fn?
    private var writesClosed = false
    /// The previous read_until delimiter, reused so a read loop allocates nothing.
    private var lastDelimiter: [UInt8] = []
    /// The bytes being handed to a read callback right now: a write of bytes inside it
    /// sends a slice of the receive buffer instead of a copy.
    private var delivering: (buffer: ByteBuffer, base: UnsafeRawPointer)?
    private var lingerTimer: Scheduled<Void>?
    /// A `read()` was issued and NIO has not delivered since: asking again changes nothing.
    private var socketReadRequested = false
    /// Mirrors `channel.isWritable` (updated on writability changes), so demand checks
    /// need not ask the channel on every message.
    private var writable = true
    /// Set while a relay owns this stream: reads go to the partner, not to the plugin.
    var relay: ChannelRelay?
    /// Set while the socket pump relays this stream (or is being handed the socket).
    var pumpRelay: PumpRelay?
    /// The addresses, kept when the socket goes to the pump and the channel closes.
    private var detachedAddresses: (local: SocketAddress?, remote: SocketAddress?)?
    /// Steps still to finish before the stream opens; the socket is read for them meanwhile.
    private var awaiting: Preamble
    /// Bounds the preamble and a start_tls handshake.
    var handshakeTimer: Scheduled<Void>?
    /// Why a connection that never opened ended.
    private var abandonReason: (StreamError, (any Error)?)?
    /// A start_tls waiting for its handshake.
    var tlsUpgrade: (callback: wharf_tls_cb, userdata: UnsafeMutableRawPointer?)?
    public internal(set) var facts = ConnectionFacts()
    /// The host an outgoing stream was connected to (start_tls's default server name).
    var connectHost: String?

    /// Called once the channel is active and the handle exists (e.g. the plugin's
    /// handle_stream). A nonzero result closes the stream.
    private let onOpen: (IOStreamHandler) -> Int32
    /// Called after the close notification, when the handle is dead.
    private let onFinished: (IOStreamHandler) -> Void
    /// Called instead of both when the connection ends before it opened (a failed or
    /// timed-out preamble): the plugin never saw it.
    private let onAbandoned: (StreamError, (any Error)?) -> Void

    public init(loop: LoopContext, options: StreamOptions, streamID: UInt64, isClient: Bool = false,
                awaiting: Preamble = [],
                onOpen: @escaping (IOStreamHandler) -> Int32,
                onFinished: @escaping (IOStreamHandler) -> Void = { _ in },
                onAbandoned: @escaping (StreamError, (any Error)?) -> Void = { _, _ in }) {
        self.loop = loop
        self.options = options
        self.streamID = streamID
        self.isClient = isClient
        self.awaiting = awaiting
        self.machine = IOStreamStateMachine(maxBufferSize: options.maxBufferSize)
        self.onOpen = onOpen
        self.onFinished = onFinished
        self.onAbandoned = onAbandoned
    }

    public var channel: (any Channel)? { context?.channel }

    // MARK: Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context: context) }
    }

    /// The context references this handler; dropping our reference breaks the cycle so
    /// the channel, its pipeline and this handler are freed.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    /// Opens the stream now, or once the preamble (PROXY header, TLS handshake) is done.
    private func activate(context: ChannelHandlerContext) {
        guard lifecycle == .starting, handshakeTimer == nil else { return }
        if awaiting.isEmpty {
            open(context: context)
            return
        }
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: options.handshakeTimeout) {
            self.abandon(.timedOut, nil)
        }
        context.read()
    }

    func preambleStepDone(_ step: Preamble, context: ChannelHandlerContext) {
        awaiting.remove(step)
        guard lifecycle == .starting, awaiting.isEmpty, abandonReason == nil else { return }
        handshakeTimer?.cancel()
        handshakeTimer = nil
        open(context: context)
    }

    private func abandon(_ reason: StreamError, _ error: (any Error)?) {
        guard lifecycle == .starting, abandonReason == nil else { return }
        abandonReason = (reason, error)
        context?.close(promise: nil)
    }

    private func open(context: ChannelHandlerContext) {
        guard lifecycle == .starting else { return }
        lifecycle = .open
        let handle = loop.register(self)
        self.handle = handle
        loop.dispatch {
            let status = onOpen(self)
            if status != WHARF_OK { close(reason: nil, graceful: false) }
        }
        updateReadDemand()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        socketReadRequested = false
        if lifecycle == .starting { // bytes that came with the end of the preamble
            machine.receive(Self.unwrapInboundIn(data))
            return
        }
        if let relay {
            loop.dispatch { relay.received(Self.unwrapInboundIn(data), from: self) }
            return
        }
        machine.receive(Self.unwrapInboundIn(data))
        if pumpRelay != nil { return } // read before the relay began: handed over with the socket
        loop.dispatch { serviceRead() }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if lifecycle == .starting {
            if !awaiting.isEmpty, abandonReason == nil { context.read() } // feed the preamble
            return
        }
        machine.compactIfWasteful()
        updateReadDemand()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let header = event as? ProxyProtocolHeader {
            facts.proxied = header
            preambleStepDone(.proxyHeader, context: context)
            return
        }
        if let event = event as? TLSUserEvent, case let .handshakeCompleted(alpn) = event {
            tlsEstablished(context: context, alpn: alpn)
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            if lifecycle == .starting {
                abandon(.closed, nil)
                return
            }
            socketReadRequested = false
            machine.endOfInput()
            if let relay {
                loop.dispatch { relay.inputEnded(on: self) }
            } else if pumpRelay == nil {
                scheduleService()
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer that closes TCP without close_notify: an ordinary end of input here, as
        // for plain TCP (the input-closed event follows).
        if let error = error as? NIOSSLError, case .uncleanShutdown = error { return }
        if lifecycle == .starting {
            abandon(Self.classify(error), error)
            return
        }
        if tlsUpgrade != nil {
            TLSLog.logger.info("start_tls handshake failed", metadata: ["stream": "\(streamID)", "error": "\(error)"])
            finishTLSUpgrade(Self.classify(error))
        }
        close(reason: Self.classify(error), graceful: false)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if let relay { relay.partner(of: self).updateReadDemand() }
        updateReadDemand()
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        lingerTimer?.cancel()
        lingerTimer = nil
        handshakeTimer?.cancel()
        handshakeTimer = nil
        switch lifecycle {
        case .starting:
            lifecycle = .finished
            let (reason, error) = abandonReason ?? (.closed, nil)
            onAbandoned(reason, error)
        case .open, .closing:
            if tlsUpgrade != nil { finishTLSUpgrade(.closed) }
            lifecycle = .closed
            machine.closeReads(reason: nil)
            if let relay { loop.dispatch { relay.streamClosed(self, reason: machine.closeReason) } }
            if let pumpRelay { loop.dispatch { pumpRelay.streamClosed(self, reason: machine.closeReason) } }
            // Resolve the pending read first, then the last word; writes that NIO failed
            // while closing were queued before either.
            if machine.pending != nil { scheduleService() }
            loop.enqueue(.notifyClosed(self))
        case .pumped, .closed, .finished:
            break
        }
        context.fireChannelInactive()
    }

    private static func classify(_ error: any Error) -> StreamError {
        if let error = error as? IOError { return StreamError(socketErrno: error.errnoCode) }
        if error is ChannelError { return .closed }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError { return .tlsFailed }
        return .io
    }

    // MARK: Reading

    /// Asks the socket for data when it is wanted: by the state machine (and while our own
    /// output is not backed up), or, when relayed, while the partner can take what we read.
    func updateReadDemand() {
        guard lifecycle == .open, !socketReadRequested, pumpRelay == nil, let context else { return }
        let wanted = if tlsUpgrade != nil {
            true // drive the handshake
        } else if let relay {
            !machine.inputEnded && relay.partner(of: self).writable
        } else {
            writable && machine.wantsSocketRead
        }
        guard wanted else { return }
        socketReadRequested = true
        context.read()
    }

    var hasInputEnded: Bool { machine.inputEnded }
    var hasShutDownOutput: Bool { writesClosed }

    func takeBufferedInput() -> ByteBuffer? { machine.takeAllBuffered() }

    func sendRelayed(_ buffer: ByteBuffer) {
        guard lifecycle == .open, !writesClosed, let context else { return }
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
    }

    var isRelayed: Bool { relay != nil || pumpRelay != nil }

    /// Hands this stream and `partner` to a relay. Both must be open, on this loop, with no
    /// read pending and not already relayed. Plain TCP goes to the socket pump; TLS bytes
    /// must pass through their channel's TLS handler, so those pairs relay through NIO.
    func startRelay(with partner: IOStreamHandler, idleTimeout: TimeAmount?,
                    onDone: @escaping (RelayResult) -> Void) -> Int32 {
        guard partner !== self, partner.loop === loop else { return WHARF_E_INVALID }
        guard lifecycle == .open, partner.lifecycle == .open else { return WHARF_E_CLOSED }
        guard !isRelayed, !partner.isRelayed, machine.pending == nil, partner.machine.pending == nil else {
            return WHARF_E_BUSY
        }
        if isPumpable, partner.isPumpable {
            PumpRelay(a: self, b: partner, idleTimeout: idleTimeout, onDone: onDone).start()
        } else {
            ChannelRelay(a: self, b: partner, idleTimeout: idleTimeout, onDone: onDone).start()
        }
        return WHARF_OK
    }

    /// Plain TCP, both directions open: the pump can carry it as raw bytes.
    private var isPumpable: Bool { facts.tls == nil && tlsUpgrade == nil && !writesClosed }

    var hasUnsentWrites: Bool {
        let unsent = (try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        return unsent > 0
    }

    /// Calls `body` once everything written so far has reached the socket (true), or the
    /// channel closed first (false): the barrier behind a graceful close, a half-close and a
    /// relay's hand-over.
    func whenWritesSent(_ body: @escaping (Bool) -> Void) {
        guard let context else { return body(false) }
        let sent = context.eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { result in
            if case .success = result { body(true) } else { body(false) }
        }
        context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer()), promise: sent)
    }

    /// Gives the socket to the pump: what was read and not delivered goes with it, and the
    /// channel closes its own descriptor (the pump holds a duplicate).
    func detachSocket() -> (buffered: ByteBuffer?, inputEnded: Bool) {
        detachedAddresses = (context?.channel.localAddress, context?.channel.remoteAddress)
        let handover = (machine.takeAllBuffered(), machine.inputEnded)
        lifecycle = .pumped
        context?.close(promise: nil)
        return handover
    }

    /// The pump ended the relay and closed the socket.
    func pumpEnded(reason: StreamError?) {
        guard lifecycle == .pumped else { return }
        lifecycle = .closed
        machine.closeReads(reason: reason)
        loop.enqueue(.notifyClosed(self))
    }

    var localAddress: SocketAddress? { detachedAddresses.map(\.local) ?? channel?.localAddress }
    var remoteAddress: SocketAddress? { detachedAddresses.map(\.remote) ?? channel?.remoteAddress }

    func startReadUntil(delimiter: UnsafeRawBufferPointer, maxBytes: Int, callback: wharf_read_cb,
                        userdata: UnsafeMutableRawPointer?) -> Int32 {
        if !lastDelimiter.elementsEqual(delimiter) { lastDelimiter = Array(delimiter) }
        return startRead(.until(delimiter: lastDelimiter, maxBytes: maxBytes), callback: callback, userdata: userdata)
    }

    func startRead(_ request: ReadRequest, callback: wharf_read_cb, userdata: UnsafeMutableRawPointer?) -> Int32 {
        if isRelayed { return WHARF_E_BUSY }
        switch machine.startRead(request) {
        case let .rejected(error):
            return error == .busy || lifecycle == .open ? error.code : WHARF_E_CLOSED
        case .started:
            readCallback = callback
            readUserdata = userdata
            scheduleService()
            return WHARF_OK
        }
    }

    /// Queues an evaluation of the pending read; it runs after the current plugin code.
    private func scheduleService() {
        guard !serviceScheduled else { return }
        serviceScheduled = true
        loop.enqueue(.serviceRead(self))
    }

    /// Completes the pending read if the buffer (or a close) decides it. Runs inside the
    /// loop's dispatcher, so the plugin callback it makes is never nested in a host call.
    func serviceRead() {
        serviceScheduled = false
        guard let callback = readCallback else {
            updateReadDemand()
            return
        }
        switch machine.evaluate() {
        case .waitForData:
            updateReadDemand()
        case let .deliver(length):
            let userdata = readUserdata
            readCallback = nil
            readUserdata = nil
            let data = machine.takeDelivery(length: length)
            data.withUnsafeReadableBytes { bytes in
                if let base = bytes.baseAddress { delivering = (data, base) }
                callback(userdata, handle, WHARF_OK, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
                delivering = nil
            }
            updateReadDemand()
        case let .fail(error):
            let userdata = readUserdata
            readCallback = nil
            readUserdata = nil
            machine.clearPending()
            callback(userdata, handle, error.code, nil, 0)
            switch error {
            case .limitExceeded, .bufferFull: close(reason: error, graceful: true)
            default: close(reason: nil, graceful: true)
            }
        }
    }

    // MARK: Writing and closing

    func write(_ bytes: UnsafeRawBufferPointer, callback: wharf_write_cb?, userdata: UnsafeMutableRawPointer?) -> Int32 {
        if isRelayed, lifecycle == .open || lifecycle == .pumped { return WHARF_E_BUSY }
        guard lifecycle == .open, !writesClosed, let context else { return WHARF_E_CLOSED }
        let buffer = outboundBuffer(for: bytes, allocator: context.channel.allocator)
        guard let callback else {
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
            return WHARF_OK
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { result in
            let status: Int32
            switch result {
            case .success: status = WHARF_OK
            case let .failure(error):
                let cause = self.machine.closeReason ?? Self.classify(error)
                status = cause == .connectionReset ? WHARF_E_RESET : WHARF_E_CLOSED
            }
            self.loop.enqueue(.writeDone(self, callback, userdata, status))
        }
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: promise)
        return WHARF_OK
    }

    /// The bytes to send: a shared slice when they lie inside the read being delivered
    /// (copy-on-write keeps it intact if the receive buffer changes later), else a copy.
    private func outboundBuffer(for bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        if let (delivered, base) = delivering, let start = bytes.baseAddress {
            let offset = base.distance(to: start)
            if offset >= 0, offset + bytes.count <= delivered.readableBytes,
               let slice = delivered.getSlice(at: delivered.readerIndex + offset, length: bytes.count) {
                return slice
            }
        }
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Closes the stream. Graceful: flush pending writes first (bounded by close linger).
    func close(reason: StreamError?, graceful: Bool) {
        if let pumpRelay, lifecycle == .open || lifecycle == .pumped {
            pumpRelay.close(self, reason: reason, graceful: graceful)
            return
        }
        guard lifecycle == .open || lifecycle == .starting || (lifecycle == .closing && !graceful),
              let context else { return }
        let wasClosing = lifecycle == .closing
        lifecycle = .closing
        machine.closeReads(reason: reason)
        if machine.pending != nil { scheduleService() }
        if graceful {
            whenWritesSent { _ in context.close(promise: nil) }
            if lifecycle == .closing {
                lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: options.closeLinger) {
                    self.close(reason: .timedOut, graceful: false)
                }
            }
        } else {
            if !wasClosing, reason == nil {
                // A plugin's abort: SO_LINGER 0 makes close() send RST and drop unsent data.
                // (After a socket error the connection is already gone; nothing to add.)
                _ = (context.channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            }
            context.close(promise: nil)
        }
    }

    func shutdownWrite() -> Int32 {
        guard lifecycle == .open, !writesClosed, let context else { return WHARF_E_CLOSED }
        writesClosed = true
        whenWritesSent { sent in
            if sent { context.close(mode: .output, promise: nil) }
        }
        return WHARF_OK
    }

    // MARK: Plugin state

    func setCloseCallback(_ callback: wharf_close_cb?, userdata: UnsafeMutableRawPointer?) {
        closeCallback = callback
        closeUserdata = userdata
    }

    func setUserContext(_ pointer: UnsafeMutableRawPointer?, free: wharf_context_free_fn?) {
        let previous = (userContext, userContextFree)
        userContext = pointer
        userContextFree = free
        if let release = previous.1, previous.0 != pointer { release(previous.0) }
    }

    /// The stream's last word: the close callback, then the context destructor; after
    /// this the handle is dead.
    func notifyClosed() {
        guard lifecycle == .closed, let handle else { return }
        lifecycle = .finished
        relay = nil // the relay references both streams; this breaks the cycle
        pumpRelay = nil
        if let callback = readCallback {
            // Unreachable in practice (the read was resolved first); kept as a guarantee.
            let userdata = readUserdata
            readCallback = nil
            callback(userdata, handle, machine.closeReason?.code ?? WHARF_E_CLOSED, nil, 0)
        }
        if let callback = closeCallback {
            closeCallback = nil
            callback(closeUserdata, handle, machine.closeReason?.code ?? WHARF_OK)
        }
        if let release = userContextFree {
            userContextFree = nil
            release(userContext)
        }
        userContext = nil
        loop.unregister(handle)
        onFinished(self)
    }

    /// A stream waiting for the start of a message with nothing to send: safe to close
    /// at once when draining.
    var isIdle: Bool {
        lifecycle == .open && machine.pending != nil && machine.bufferedBytes == 0 && writable
    }

    func setNoDelay(_ enabled: Bool) -> Int32 {
        if let pumpRelay, lifecycle == .pumped {
            pumpRelay.setNoDelay(self, enabled)
            return WHARF_OK
        }
        guard lifecycle == .open || lifecycle == .closing, let channel = context?.channel else { return WHARF_E_CLOSED }
        do {
            try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: enabled ? 1 : 0)
        } catch {
            // Not a TCP socket (or already closing): a no-op, as documented.
        }
        return WHARF_OK
    }
}

@available(*, unavailable)
extension IOStreamHandler: Sendable {}
