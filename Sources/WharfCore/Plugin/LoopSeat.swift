import CWharf
import NIOConcurrencyHelpers
import NIOCore

/// One plugin instance's place on its event loop: the `wharf_loop *` its init receives. It
/// owns the instance's loop-level work (timers, streams from `loop_connect`, pools) and
/// ends all of it before the instance's shutdown hook runs.
///
///     initializing ──init returned──► open ──end()──► ended
///
/// Confined to its loop, except `post`, which any thread may call.
final class LoopSeat: TimerOwner, @unchecked Sendable {
    let pluginLoop: PluginLoop
    /// The ABI minor the plugin was built against: which codes it knows.
    let abiMinor: UInt16
    /// The `wharf_loop *` the plugin holds (dead once the seat has ended).
    private(set) var handle: OpaquePointer?
    var timers: [PluginTimer] = []
    /// Loop-level streams that are open (connects still under way are not here yet).
    private var streams: [ObjectIdentifier: PluginStream] = [:]
    private var pools: [ObjectIdentifier: PluginPool] = [:]
    /// Runs once the last stream is gone after `end`.
    private var whenEnded: (() -> Void)?

    private enum Phase {
        /// init() is running: posts wait until it returns.
        case initializing([PostedWork])
        case open
        case ended
    }

    /// Read by any thread that posts.
    private let phase = NIOLockedValueBox(Phase.initializing([]))

    /// Made on the loop, whose handle table it joins: see `make`.
    private init(pluginLoop: PluginLoop, abiMinor: UInt16) {
        self.pluginLoop = pluginLoop
        self.abiMinor = abiMinor
        self.handle = pluginLoop.register(self)
    }

    /// A seat for an instance about to be initialized, from the control thread (or the
    /// loop itself).
    static func make(on pluginLoop: PluginLoop, abiMinor: UInt16) -> LoopSeat {
        let eventLoop = pluginLoop.loop.eventLoop
        if eventLoop.inEventLoop { return LoopSeat(pluginLoop: pluginLoop, abiMinor: abiMinor) }
        let made = try? eventLoop.submit { UnsafeTransfer(LoopSeat(pluginLoop: pluginLoop, abiMinor: abiMinor)) }.wait()
        guard let made else { preconditionFailure("the event loop stopped while plugins were being initialized") }
        return made.value
    }

    var isInitializing: Bool {
        phase.withLockedValue { if case .initializing = $0 { true } else { false } }
    }

    var hasEnded: Bool {
        phase.withLockedValue { if case .ended = $0 { true } else { false } }
    }

    func code(_ error: StreamError?) -> Int32 { StatusCode.of(error, abiMinor: abiMinor) }

    // MARK: Posting

    /// `loop_post`, on the loop (`LoopPost` looked the seat up there): runs `function` after
    /// the current code returns; during init, once init has returned.
    func post(_ function: wharf_post_fn, userdata: UnsafeMutableRawPointer?) {
        let work = PostedWork(function: function, userdata: userdata, seat: self)
        let deferred = phase.withLockedValue { phase -> Bool in
            guard case var .initializing(waiting) = phase else { return false }
            waiting.append(work)
            phase = .initializing(waiting)
            return true
        }
        if !deferred { work.run() }
    }

    /// init() failed: the instance never existed. Posts it made run with WHARF_E_SHUTDOWN
    /// (so the plugin can free what they carry), and the handle dies.
    func abandon() {
        let waiting = phase.withLockedValue { phase -> [PostedWork] in
            defer { phase = .ended }
            if case let .initializing(waiting) = phase { return waiting }
            return []
        }
        waiting.forEach { $0.schedule() }
        let (pluginLoop, handle) = (self.pluginLoop, UnsafeTransfer(self.handle))
        pluginLoop.loop.eventLoop.execute {
            if let handle = handle.value { pluginLoop.unregister(seat: handle) }
        }
    }

    /// init() returned successfully: posts it made now run, in order.
    func initialized() {
        let waiting = phase.withLockedValue { phase -> [PostedWork] in
            guard case let .initializing(waiting) = phase else { return [] }
            phase = .open
            return waiting
        }
        waiting.forEach { $0.schedule() }
    }

    /// Crosses threads by value; the plugin owns what `userdata` points to.
    private struct PostedWork: @unchecked Sendable {
        let function: wharf_post_fn
        let userdata: UnsafeMutableRawPointer?
        let seat: LoopSeat

        /// On the loop: after the current code returns.
        func run() {
            let seat = self.seat
            seat.pluginLoop.loop.enqueue(.completion { [self] in
                function(userdata, seat.hasEnded ? WHARF_E_SHUTDOWN : WHARF_OK)
            })
        }

        /// From the thread that ran init: onto the loop, then `run`.
        func schedule() {
            if seat.pluginLoop.isStopped { return function(userdata, WHARF_E_SHUTDOWN) }
            seat.pluginLoop.loop.eventLoop.execute { run() }
        }
    }

    // MARK: Loop-level work (on the loop)

    /// `loop_connect`: an outgoing stream that belongs to this seat, not to a client.
    func connect(host: String, port: Int, options: ConnectOptions,
                 completion: @escaping (Result<PluginStream, StreamError>) -> Void) {
        var streamOptions = StreamOptions()
        if let cap = options.maxBufferSize { streamOptions.maxBufferSize = cap }
        let upstream = PluginStream(pluginLoop: pluginLoop, abiMinor: abiMinor, role: .connected { [self] result in
            if case let .success(stream) = result {
                guard !hasEnded else {
                    // The instance ended while connecting: the stream is never handed out.
                    stream.stream.close(reason: .shuttingDown, graceful: false)
                    return completion(.failure(.shuttingDown))
                }
                adopt(stream)
            }
            completion(result)
        })
        UpstreamConnector.connect(on: pluginLoop.loop, host: host, port: port, options: options,
                                  streamOptions: streamOptions, holdsDrain: false, owner: upstream,
                                  connectFailed: upstream.connectFailed)
    }

    private func adopt(_ stream: PluginStream) {
        stream.seat = self
        streams[ObjectIdentifier(stream)] = stream
    }

    /// A loop-level stream's close notification has run.
    func streamEnded(_ stream: PluginStream) {
        streams[ObjectIdentifier(stream)] = nil
        if streams.isEmpty, let done = whenEnded {
            whenEnded = nil
            done()
        }
    }

    func adopt(_ pool: PluginPool) { pools[ObjectIdentifier(pool)] = pool }
    func forget(_ pool: PluginPool) { pools[ObjectIdentifier(pool)] = nil }

    /// The instance is shutting down (its client streams are gone): pools are destroyed,
    /// timers complete with WHARF_E_SHUTDOWN, streams close; `done` runs once the last
    /// stream's close notification has. After this the `wharf_loop *` is dead.
    func end(_ done: @escaping () -> Void) {
        let wasEnded = phase.withLockedValue { phase -> Bool in
            if case .ended = phase { return true }
            phase = .ended
            return false
        }
        guard !wasEnded else { return done() }
        pluginLoop.loop.dispatch {
            pools.values.forEach { $0.destroy() }
            timers.forEach { $0.end(WHARF_E_SHUTDOWN) }
            if let handle {
                pluginLoop.unregister(seat: handle)
                self.handle = nil
            }
            if streams.isEmpty { return done() }
            whenEnded = done
            streams.values.forEach { $0.stream.close(reason: .shuttingDown, graceful: false) }
        }
    }
}
