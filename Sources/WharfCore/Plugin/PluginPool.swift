import CWharf
import NIOCore

/// A pool's connection: its stream and its place in the pool. Kept by the pool while it
/// is open, and by the watch read on it while it is idle.
final class PooledConnection {
    let id: Int
    let pool: PluginPool
    unowned let stream: PluginStream
    /// A watch read is pending (the connection is idle).
    var watching = false

    init(id: Int, pool: PluginPool, stream: PluginStream) {
        self.id = id
        self.pool = pool
        self.stream = stream
    }
}

/// The `wharf_pool *` a plugin holds: carries out what `ConnectionPoolMachine` decides, on
/// the pool's loop. Idle connections are watched with a one-byte read, so bytes or EOF from
/// an idle upstream close it instead of reaching the next user.
final class PluginPool: DeadlineOwner {
    private let seat: LoopSeat
    private let host: String
    private let port: Int
    private let connectOptions: ConnectOptions
    private var machine: ConnectionPoolMachine
    private var connections: [Int: PooledConnection] = [:]
    private var waiters: [Int: (wharf_pool_cb, UnsafeMutableRawPointer?)] = [:]
    private var nextID = 0
    private var running = false
    private(set) var handle: OpaquePointer?
    var wheelSlot: DeadlineWheel.Slot?
    private var armedDeadline: NIODeadline?

    private var loop: LoopContext { seat.pluginLoop.loop }

    init(seat: LoopSeat, host: String, port: Int, limits: ConnectionPoolMachine.Limits, connectOptions: ConnectOptions) {
        self.seat = seat
        self.host = host
        self.port = port
        self.connectOptions = connectOptions
        self.machine = ConnectionPoolMachine(limits: limits)
        handle = seat.pluginLoop.register(self)
        seat.adopt(self)
    }

    /// The wheel holds pools unowned: a pool never leaves with a deadline still armed.
    deinit { if wheelSlot != nil { loop.deadlines.remove(self) } }

    // MARK: From the plugin

    func acquire(_ callback: wharf_pool_cb, _ userdata: UnsafeMutableRawPointer?) -> Int32 {
        let id = takeID()
        guard machine.acquire(id, now: loop.now) else { return machine.isDestroyed ? WHARF_E_CLOSED : WHARF_E_LIMIT }
        waiters[id] = (callback, userdata)
        run()
        return WHARF_OK
    }

    func release(_ stream: PluginStream) -> Int32 {
        guard let connection = stream.pooled, connection.pool === self else { return WHARF_E_INVALID }
        let reusable = stream.stream.isReusable
        stream.detachFromUser()
        guard machine.released(connection.id, reusable: reusable, now: loop.now) else { return WHARF_E_INVALID }
        if reusable, !machine.isDestroyed { watch(connection) }
        run()
        return WHARF_OK
    }

    /// pool_destroy, or the instance's end: the handle dies; connections in use stay the
    /// plugin's until released.
    func destroy() {
        machine.destroy()
        run()
        if let handle {
            seat.pluginLoop.unregister(pool: handle)
            self.handle = nil
        }
        seat.forget(self)
    }

    // MARK: From the connections

    /// A pool connection's close notification has run: forget it.
    func connectionClosed(_ stream: PluginStream) {
        guard let connection = stream.pooled, connections.removeValue(forKey: connection.id) != nil else { return }
        machine.lost(connection.id)
        run()
    }

    /// The watch read on an idle connection ended: bytes or EOF from an idle upstream.
    private func disturbed(_ connection: PooledConnection) {
        connection.watching = false
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        machine.lost(connection.id)
        close(connection)
        run()
    }

    private static let watchCallback: wharf_read_cb = { context, _, _, _, _ in
        guard let context else { return }
        let connection = Unmanaged<PooledConnection>.fromOpaque(context).takeRetainedValue()
        connection.pool.disturbed(connection)
    }

    private func watch(_ connection: PooledConnection) {
        guard !connection.watching else { return }
        let context = Unmanaged.passRetained(connection).toOpaque()
        let token = CompletionToken(function: unsafeBitCast(Self.watchCallback, to: OpaquePointer.self), context: context)
        if connection.stream.stream.startRead(.bytes(count: 1, partial: true), token: token) == nil {
            connection.watching = true
        } else {
            Unmanaged<PooledConnection>.fromOpaque(context).release()
        }
    }

    private func stopWatching(_ connection: PooledConnection) {
        guard connection.watching else { return }
        connection.watching = false
        if let token = connection.stream.stream.withdrawRead(), let context = token.context {
            Unmanaged<PooledConnection>.fromOpaque(context).release()
        }
    }

    // MARK: Carrying out the machine's decisions

    private func run() {
        guard !running else { return }
        running = true
        while let action = machine.next() {
            switch action {
            case let .hand(id, waiter): hand(id, to: waiter)
            case .connect: openConnection()
            case let .close(id): if let connection = connections.removeValue(forKey: id) { close(connection) }
            case let .fail(waiter, reason): complete(waiter, seat.code(reason), nil)
            }
        }
        running = false
        rearm()
    }

    private func hand(_ id: Int, to waiter: Int) {
        guard let connection = connections[id] else { return }
        stopWatching(connection)
        complete(waiter, WHARF_OK, connection.stream)
    }

    /// The acquire's callback, after the current code returns (never inside pool_acquire).
    /// A connection that closed in between is not handed over: the acquire waits again.
    private func complete(_ waiter: Int, _ status: Int32, _ stream: PluginStream?) {
        guard let (callback, userdata) = waiters.removeValue(forKey: waiter) else { return }
        loop.enqueue(.completion { [self] in
            guard let stream else { return callback(userdata, status, nil) }
            guard let handle = stream.handle else {
                if acquire(callback, userdata) != WHARF_OK { callback(userdata, WHARF_E_CLOSED, nil) }
                return
            }
            callback(userdata, WHARF_OK, handle)
        })
    }

    private func openConnection() {
        seat.connect(host: host, port: port, options: connectOptions) { [self] result in
            switch result {
            case let .success(stream):
                let connection = PooledConnection(id: takeID(), pool: self, stream: stream)
                stream.pooled = connection
                connections[connection.id] = connection
                machine.connected(connection.id, now: loop.now)
                if !machine.isDestroyed { watch(connection) }
            case let .failure(reason):
                machine.connectFailed(reason)
            }
            run()
        }
    }

    private func close(_ connection: PooledConnection) {
        stopWatching(connection)
        connection.stream.pooled = nil
        connection.stream.stream.close(reason: machine.isDestroyed ? .shuttingDown : nil, graceful: false)
    }

    private func takeID() -> Int {
        nextID += 1
        return nextID
    }

    // MARK: Time

    private func rearm() {
        guard let next = machine.nextDeadline else { return }
        if let armed = armedDeadline, armed <= next { return }
        armedDeadline = next
        loop.deadlines.schedule(self, at: next)
    }

    func deadlineReached() {
        armedDeadline = nil
        loop.dispatch { [self] in
            machine.expire(now: loop.now)
            run()
        }
    }
}
