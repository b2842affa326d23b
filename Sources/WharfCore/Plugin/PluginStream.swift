import CWharf
import NIOCore

/// The C side of one stream: the plugin adapter. It owns the stream's handle, the plugin's
/// callbacks and userdata, its context and destructor, its timers, and the mapping from
/// Swift errors to `WHARF_E_*` codes. The stream itself (`IOStreamHandler`) knows none of it.
final class PluginStream: StreamOwner, TimerOwner {
    /// What opening the stream means: an accepted connection goes to the plugin's
    /// handle_stream; an outgoing one completes its connect.
    enum Role {
        /// Accepted by a listener: its preamble failures and timeouts are counted there.
        case accepted(PluginInstance, ListenerStats)
        /// Opened by the plugin test kit: handed to the plugin, counted by no listener.
        case served(PluginInstance)
        case connected((Result<PluginStream, StreamError>) -> Void)
    }

    let pluginLoop: PluginLoop
    /// The ABI minor the plugin was built against: which codes it knows.
    let abiMinor: UInt16
    /// The listener's TLS, for start_tls on an accepted stream.
    let serverTLS: ServerTLS?
    private let role: Role
    /// An outgoing stream's connect completes once, whichever outcome comes first.
    private var connectPending = true
    /// Unowned: the stream outlives its handle (the channel, a relay or the dispatcher's
    /// queued close notification keep it until `streamClosed` unregisters this adapter),
    /// and a host call then costs no retain and release.
    private(set) unowned(unsafe) var stream: IOStreamHandler!
    /// The `wharf_stream *` the plugin sees; nil until the stream opens and after it closes.
    private(set) var handle: OpaquePointer?
    private var closeCallback: (wharf_close_cb, UnsafeMutableRawPointer?)?
    private(set) var userContext: UnsafeMutableRawPointer?
    private var userContextFree: wharf_context_free_fn?
    /// Timers started on this stream and not yet completed.
    var timers: [PluginTimer] = []
    /// The close notification is running: no new timer may start.
    private(set) var finishing = false
    /// The previous read_until delimiter, reused so a read loop allocates nothing.
    private var lastDelimiter: [UInt8] = []
    /// The counters of the listener this stream serves (an upstream stream: the listener of
    /// the connection that opened it), on this loop.
    let counters: CounterBlock?
    /// Accepted, or the connect started: for the duration.
    private let startedAt: NIODeadline
    /// An outgoing stream's connect and close, as its listener and access log count them.
    private var upstream: UpstreamAccounting?
    /// The access-log line of the connection this stream serves (an upstream stream: of the
    /// connection that opened it); nil without an access log.
    let record: ConnectionRecord?
    /// Refused by the allow/deny list once its PROXY header named the client: counted so.
    private var refused: CloseReason?
    /// Counted in its listener's per-client table: released when it ends.
    var clientKey: ClientKey?
    /// A loop-level stream (`loop_connect`, a pool's connection): the instance's place on
    /// the loop it belongs to, which closes it when the instance ends.
    var seat: LoopSeat?
    /// A pool's connection: the pool and the connection's place in it.
    var pooled: PooledConnection?

    init(pluginLoop: PluginLoop, abiMinor: UInt16, serverTLS: ServerTLS? = nil, role: Role, counters: CounterBlock? = nil,
         record: ConnectionRecord? = nil) {
        self.pluginLoop = pluginLoop
        self.abiMinor = abiMinor
        self.serverTLS = serverTLS
        self.role = role
        self.counters = counters
        self.record = record
        self.startedAt = pluginLoop.loop.now
        if case .connected = role {
            upstream = UpstreamAccounting(counters: counters, record: record, now: startedAt)
        }
    }

    private var microsSinceStart: UInt64 {
        UInt64(max(0, (pluginLoop.loop.now - startedAt).nanoseconds) / 1000)
    }

    func code(_ error: StreamError?) -> Int32 { StatusCode.of(error, abiMinor: abiMinor) }

    // MARK: From the plugin

    func readUntil(_ delimiter: UnsafeRawBufferPointer, maxBytes: Int, _ callback: wharf_read_cb,
                   _ userdata: UnsafeMutableRawPointer?) -> Int32 {
        if !lastDelimiter.elementsEqual(delimiter) { lastDelimiter = Array(delimiter) }
        return read(.until(delimiter: lastDelimiter, maxBytes: maxBytes), callback, userdata)
    }

    func read(_ request: ReadRequest, _ callback: wharf_read_cb, _ userdata: UnsafeMutableRawPointer?) -> Int32 {
        code(stream.startRead(request, token: Self.token(callback, userdata)))
    }

    func write(_ bytes: UnsafeRawBufferPointer, _ callback: wharf_write_cb?, _ userdata: UnsafeMutableRawPointer?) -> Int32 {
        code(stream.write(bytes, token: callback.map { Self.token($0, userdata) }))
    }

    func setCloseCallback(_ callback: wharf_close_cb?, userdata: UnsafeMutableRawPointer?) {
        closeCallback = callback.map { ($0, userdata) }
    }

    func setUserContext(_ pointer: UnsafeMutableRawPointer?, free: wharf_context_free_fn?) {
        let previous = (userContext, userContextFree)
        userContext = pointer
        userContextFree = free
        if let release = previous.1, previous.0 != pointer { release(previous.0) }
    }

    func startTLS(client: ClientTLS?, _ callback: wharf_tls_cb, _ userdata: UnsafeMutableRawPointer?) -> Int32 {
        let stream = self.stream!
        let serverTLS = self.serverTLS
        let refusal = stream.startTLS(token: Self.token(callback, userdata)) { () throws(StreamError) in
            if stream.isClient {
                guard let client else { throw .invalidArgument }
                let host = stream.connectHost
                stream.facts.serverName = client.serverName(defaultingTo: host)
                do { return [try client.makeHandler(serverName: host)] } catch { throw .invalidArgument }
            }
            guard client == nil else { throw .invalidArgument }
            guard let tls = serverTLS, tls.startTLS else { throw .unsupported }
            return ServerTLSHandlers.make(tls, for: stream)
        }
        return code(refusal)
    }

    // MARK: StreamOwner

    func streamOpened(_ stream: IOStreamHandler) -> Bool {
        self.stream = stream
        handle = pluginLoop.register(self)
        switch role {
        case let .accepted(instance, stats):
            let loop = stream.loop.loopIndex
            // Behind a PROXY header the real client is known only now.
            if let record {
                record.announcedClient = stream.proxiedHeader?.source
                record.tlsVersion = stream.tlsFacts?.version ?? 0
                record.serverName = stream.serverName
            }
            if stats.awaiting.contains(.proxyHeader) {
                let client = stream.proxiedHeader?.source ?? stream.remoteAddress
                guard stats.admits(client, loop: loop) else {
                    refused = .denied
                    return false
                }
                if stats.clients != nil {
                    switch stats.admitClient(client, loop: loop) {
                    case let .admitted(key): clientKey = key
                    case let .refused(reason):
                        refused = reason
                        return false
                    }
                }
            }
            if stats.awaiting.contains(.tlsHandshake) { stats.tlsHandshakeDone(loop: loop) }
            stream.meter = counters.map { ByteMeter($0, upstream: false) }
            return instance.handleStream(handle) == WHARF_OK
        case let .served(instance):
            return instance.handleStream(handle) == WHARF_OK
        case let .connected(completion):
            connectPending = false
            stream.meter = upstream?.connected(to: stream.remoteAddress, now: pluginLoop.loop.now)
            completion(.success(self))
            return true
        }
    }

    func streamRead(_ stream: IOStreamHandler, _ token: CompletionToken, _ result: Result<UnsafeRawBufferPointer, StreamError>) {
        let callback = unsafeBitCast(token.function, to: wharf_read_cb.self)
        switch result {
        case let .success(bytes):
            callback(token.context, handle, WHARF_OK, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        case let .failure(error):
            callback(token.context, handle, code(error), nil, 0)
        }
    }

    func streamWrote(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {
        unsafeBitCast(token.function, to: wharf_write_cb.self)(token.context, handle, code(error))
    }

    func streamUpgraded(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {
        unsafeBitCast(token.function, to: wharf_tls_cb.self)(token.context, handle, code(error))
    }

    /// The last word: timers end first, then the close callback, then the context
    /// destructor; after this the handle is dead.
    func streamClosed(_ stream: IOStreamHandler, reason: StreamError?) {
        guard let handle else { return }
        finishing = true
        switch role {
        case let .accepted(_, listener):
            if let clientKey { listener.releaseClient(clientKey) }
            let ending = listener.streamClosed(stream, reason: reason, lasted: microsSinceStart, counted: refused)
            record?.connectionEnded(ending, received: stream.bytesReceived, sent: stream.bytesSent, now: pluginLoop.loop.now)
        case .connected:
            upstream?.closed(received: stream.bytesReceived, sent: stream.bytesSent)
        case .served:
            break
        }
        while let timer = timers.first { timer.complete(WHARF_E_CLOSED) }
        if let (callback, userdata) = closeCallback {
            closeCallback = nil
            callback(userdata, handle, code(reason))
        }
        releaseUserContext()
        self.handle = nil
        pooled?.pool.connectionClosed(self)
        pooled = nil
        seat?.streamEnded(self)
        seat = nil
        pluginLoop.unregister(handle) // releases this adapter, and with it the stream
    }

    /// pool_release: the plugin gives the stream up. It hears nothing more of it: the close
    /// callback goes, the context's destructor runs, timers complete with WHARF_E_CLOSED,
    /// the read deadline is cleared, and the handle it held is dead (the stream gets a new
    /// one for its next user).
    func detachFromUser() {
        closeCallback = nil
        releaseUserContext()
        timers.forEach { $0.end(WHARF_E_CLOSED) }
        _ = stream.setReadTimeout(nil)
        if let old = handle {
            handle = pluginLoop.register(self)
            pluginLoop.unregister(old)
        }
    }

    private func releaseUserContext() {
        if let release = userContextFree {
            userContextFree = nil
            release(userContext)
        }
        userContext = nil
    }

    func streamAbandoned(_ stream: IOStreamHandler, reason: StreamError, error: (any Error)?) {
        switch role {
        case let .accepted(_, listener):
            if let clientKey { listener.releaseClient(clientKey) }
            let ending = listener.preambleFailed(reason, error, loop: stream.loop.loopIndex)
            record?.connectionEnded(ending, before: .handshake, received: stream.bytesReceived, sent: stream.bytesSent,
                                    now: pluginLoop.loop.now)
        case .connected:
            if let error {
                TLSLog.logger.info("upstream TLS handshake with \(stream.connectHost ?? "?") failed: \(error)")
            }
            connectFailed(reason)
        case .served:
            break
        }
    }

    /// An outgoing connection could not be made (or its handshake failed).
    func connectFailed(_ reason: StreamError) {
        guard case let .connected(completion) = role, connectPending else { return }
        connectPending = false
        upstream?.failed(reason)
        completion(.failure(reason))
    }

    private static func token<Function>(_ function: Function, _ userdata: UnsafeMutableRawPointer?) -> CompletionToken {
        CompletionToken(function: unsafeBitCast(function, to: OpaquePointer.self), context: userdata)
    }
}
