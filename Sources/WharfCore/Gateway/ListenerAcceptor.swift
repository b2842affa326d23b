import Logging
import NIOCore
import NIOPosix

/// What happens to one listener's connections as they are accepted: the listening channel's
/// handlers (accept errors, stalled loops), and for each new connection the checks a plugin
/// never sees (allow/deny, `max_connections`, `per_client`), its access-log record, its
/// channel options and its pipeline (PROXY decoder, TLS, the stream).
final class ListenerAcceptor: Sendable {
    private let listener: ListenerConfig
    private let stats: ListenerStats
    private let generation: Generation
    /// The listener's plugin instance on each loop (`generation.instances[plugin]`), looked
    /// up once: by name, a dictionary lookup hashed the name for every connection.
    private let instances: [PluginInstance]
    private let loops: [ObjectIdentifier: PluginLoop]
    private let watch: LoopWatch
    private let gate: AcceptGate
    private let logger: Logger
    /// TLS terminated at accept, unless the plugin upgrades later with start_tls.
    private let acceptTLS: ServerTLS?
    private let receiveAllocator: any RecvByteBufferAllocator
    /// Without a PROXY header the socket's peer is the client: refuse it before any work.
    private let checkAtAccept: Bool
    private let limitClientsAtAccept: Bool
    /// `max_connections` in queue mode: each connection's slot is taken before it goes on (by
    /// the listening channel's `ListenerSlots` or the relay pump's listener), so admitting it
    /// counts nothing more. Nil without a limit or in reject mode.
    private let slotLimit: ConnectionLimit?

    init(listener: ListenerConfig, stats: ListenerStats, generation: Generation, loops: [ObjectIdentifier: PluginLoop],
         watch: LoopWatch, gate: AcceptGate, logger: Logger) {
        self.listener = listener
        self.stats = stats
        self.generation = generation
        instances = generation.instances[listener.plugin] ?? []
        self.loops = loops
        self.watch = watch
        self.gate = gate
        self.logger = logger
        acceptTLS = listener.tls.flatMap { $0.startTLS ? nil : $0 }
        receiveAllocator = StreamChannelOptions.receiveAllocator(chunkSize: listener.effectiveReadChunkSize,
                                                                 fixed: listener.fixedReadChunks)
        checkAtAccept = !listener.access.isEmpty && !listener.proxyProtocolAccept
        limitClientsAtAccept = stats.clients != nil && !listener.proxyProtocolAccept
        slotLimit = stats.limit.flatMap { $0.rejects ? nil : $0 }
    }

    func initializeServer(_ channel: any Channel) throws {
        let loopIndex = loops[ObjectIdentifier(channel.eventLoop)]?.loop.loopIndex ?? 0
        gate.attach(channel)
        let pipeline = channel.pipeline.syncOperations
        if let slotLimit {
            let slots = ListenerSlots(limit: slotLimit, gate: gate)
            try pipeline.addHandler(slots)
            slotLimit.attach(gate, on: channel.eventLoop, held: slots)
        } else {
            stats.limit?.attach(gate, on: channel.eventLoop)
        }
        if watch.loops.count > 1 { // with one loop there is nowhere else to go
            try pipeline.addHandler(StallAwareDispatch(watch: watch, listener: listener,
                                                       initializer: { try self.initializeChild($0) }))
        }
        try pipeline.addHandler(AcceptBackoff(listener: listener.displayName, gate: gate, logger: logger,
                                              counters: stats.counters[loopIndex]))
    }

    /// The `max_connections` share a relay pump takes a slot of before each accept (queue
    /// mode; in reject mode the loop closes the extra ones, as on a channel).
    var pumpSlots: (any AcceptSlots)? { slotLimit }

    /// `initializeServer`'s counterpart for a relay pump's listener (`PumpAcceptor`): the
    /// limit pauses its gate on `home`'s loop; the back-off it returns counts failed accepts.
    func prepareForPump(gate: AcceptGate, home: PluginLoop) -> AcceptBackoff {
        stats.limit?.attach(gate, on: home.loop.eventLoop)
        return AcceptBackoff(listener: listener.displayName, gate: gate, logger: logger,
                             counters: stats.counters[home.loop.loopIndex])
    }

    func initializeChild(_ channel: any Channel) throws {
        // In queue mode the listening channel's `ListenerSlots` took this one's slot.
        let reserved = slotLimit != nil
        guard let pluginLoop = loops[ObjectIdentifier(channel.eventLoop)],
              let instance = instance(onLoop: pluginLoop.loop.loopIndex) else {
            if reserved { stats.limit?.ended() }
            throw GatewayError(kind: .plugin, message: "no plugin instance for this event loop")
        }
        guard let admitted = admit(remote: channel.remoteAddress, local: channel.localAddress, loop: pluginLoop.loop,
                                   reserved: reserved, refuse: { channel.close(promise: nil) }) else { return }
        try StreamChannelOptions.apply(to: channel, receiveAllocator: receiveAllocator)
        let handler = makeStream(instance, pluginLoop, admitted)
        let pipeline = channel.pipeline.syncOperations
        if stats.awaiting.contains(.proxyHeader) { try pipeline.addHandler(ProxyProtocolDecoder()) }
        if let acceptTLS { try pipeline.addHandlers(ServerTLSHandlers.make(acceptTLS, for: handler)) }
        try pipeline.addHandler(handler)
    }

    /// Sockets the pump accepted in one batch, on their loop: the relays their plugin opens
    /// wake the pump once for the batch.
    func adopt(_ sockets: [AcceptedSocket], local listening: SocketAddress?, on pluginLoop: PluginLoop) {
        pluginLoop.loop.pump.batchingCommands {
            for socket in sockets { adopt(socket, local: listening, on: pluginLoop) }
        }
    }

    /// A connection a relay pump accepted (`PumpAcceptor`), on its loop: the same checks,
    /// record and stream as `initializeChild`, opened on the bare socket (`BareSocket`),
    /// after the pump has read its PROXY header and run its TLS handshake, if it has them.
    /// `local`: the listener's own address, or nil if it listens on a wildcard.
    func adopt(_ socket: AcceptedSocket, local listening: SocketAddress?, on pluginLoop: PluginLoop) {
        guard let instance = instance(onLoop: pluginLoop.loop.loopIndex) else {
            if socket.reserved { stats.limit?.ended() }
            return SocketHandoff.close(socket.fd)
        }
        let local = listening ?? (try? SocketAddress(localAddressOf: socket.fd))
        guard let admitted = admit(remote: socket.remote, local: local, loop: pluginLoop.loop, reserved: socket.reserved,
                                   refuse: { SocketHandoff.close(socket.fd) }) else { return }
        let bare = BareSocket(fd: socket.fd, noDelay: listener.tcpNoDelay, receiveAllocator: receiveAllocator)
        let stream = makeStream(instance, pluginLoop, admitted)
        if acceptTLS != nil || listener.proxyProtocolAccept {
            stream.open(bare: bare, local: local, remote: socket.remote, proxyHeader: listener.proxyProtocolAccept,
                        tls: acceptTLS)
        } else {
            stream.open(bare: bare, local: local, remote: socket.remote)
        }
    }

    private func instance(onLoop index: Int) -> PluginInstance? {
        instances.indices.contains(index) ? instances[index] : nil
    }

    /// What admitting a connection leaves for its stream.
    private struct Admission {
        let record: ConnectionRecord?
        let clientKey: ClientKey?
    }

    /// The checks a plugin never sees: allow/deny, `max_connections`, `per_client` (the
    /// first and last wait for the PROXY header if there is one). Counts the connection and
    /// starts its access-log record; nil if it was refused (`refuse` has closed it).
    /// `reserved`: a relay pump took the connection's `max_connections` slot before it
    /// accepted (given back here if the connection is refused first).
    private func admit(remote: SocketAddress?, local: SocketAddress?, loop: LoopContext, reserved: Bool = false,
                       refuse close: () -> Void) -> Admission? {
        let loopIndex = loop.loopIndex
        stats.accepted(loop: loopIndex)
        let record = stats.accessLog.map { ConnectionRecord(sink: $0, now: loop.now) }
        record?.client = remote
        record?.local = local
        func refuse(_ reason: CloseReason) -> Admission? {
            record?.connectionEnded(reason, before: .accept, now: loop.now)
            close()
            return nil
        }
        if checkAtAccept, !stats.admits(remote, loop: loopIndex) {
            if reserved { stats.limit?.ended() }
            return refuse(.denied)
        }
        guard stats.admitUnderLimit(loop: loopIndex, reserved: reserved) else { return refuse(.rejected) }
        var clientKey: ClientKey?
        if limitClientsAtAccept {
            switch stats.admitClient(remote, loop: loopIndex) {
            case let .admitted(key): clientKey = key
            case let .refused(reason):
                stats.limit?.ended()
                return refuse(reason)
            }
        }
        return Admission(record: record, clientKey: clientKey)
    }

    private func makeStream(_ instance: PluginInstance, _ pluginLoop: PluginLoop, _ admitted: Admission) -> IOStreamHandler {
        let loop = pluginLoop.loop
        let adapter = PluginStream(pluginLoop: pluginLoop, abiMinor: instance.library.abiMinor, serverTLS: listener.tls,
                                   role: .accepted(instance, stats), counters: stats.counters[loop.loopIndex],
                                   record: admitted.record)
        adapter.clientKey = admitted.clientKey
        return IOStreamHandler(loop: loop, options: listener.streamOptions, streamID: loop.nextStreamID(),
                               awaiting: stats.awaiting, owner: adapter)
    }
}
