import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failure to start serving, typed so the CLI picks its exit code by kind, not by text.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// A plugin could not be loaded or refused its config: the config is at fault.
        case plugin
        /// A listener could not bind: the machine is at fault (port taken, no permission).
        case listen
    }

    public let kind: Kind
    public let message: String
    public var description: String { message }
}

/// A listener that is accepting, with the address it really bound (port 0 resolved).
public struct BoundListener: Sendable {
    public let config: ListenerConfig
    public let address: String
    public let port: Int
    public let pluginSummary: String
    /// Accepted by a relay pump, with no channel per connection (see `PumpAcceptor`).
    public var acceptedByPump = false
}

/// The running daemon: owns the event loops, the current generation of plugin
/// instances, and the listening sockets. `start` serves; `shutdown` drains and stops.
public final class Gateway: @unchecked Sendable {
    public let config: GatewayConfig
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let loops: [PluginLoop]
    private let loopsByEventLoop: [ObjectIdentifier: PluginLoop]
    private let generation: Generation
    /// How each listener accepts: a listening channel, or a relay pump (`PumpAcceptor`).
    private enum Serving {
        case channel(any Channel, AcceptGate)
        case pump(PumpAcceptor)
    }
    private let serving = NIOLockedValueBox<[Serving]>([])
    private let listenerStats = NIOLockedValueBox<[ListenerStats]>([])
    private let forcedCloses = NIOLockedValueBox(0)
    private let stopped = NIOLockedValueBox(false)
    /// Where this process counts: the segment the supervisor shares, or private memory.
    public let metrics: WorkerMetrics
    /// One line per connection, if the config asks for it.
    public let accessLog: AccessLog?
    /// Per listener index with `per_client` limits: the table all workers share.
    private let clientTables: [Int: ClientTable]
    /// This worker's lane in those tables.
    private let clientLane: Int
    /// Which event loops turn (heartbeats, lag, stalled loops skipped for new connections).
    let loopWatch: LoopWatch
    private let watchdog: StallWatchdog

    /// `metrics`: the segment the supervisor created for this worker; without one the
    /// counters live in this process only (`--single-process`, tests).
    /// `clientTables`: the supervisor's per-client tables (by listener index); missing ones
    /// are made private to this process.
    public init(config: GatewayConfig, logger: Logger, metrics: MetricsSegment? = nil,
                generation generationNumber: Int = 1, clientTables: [Int: ClientTable] = [:],
                clientLane: Int = 0) throws(GatewayError) {
        self.config = config
        self.logger = logger
        var tables = clientTables
        for (index, listener) in config.listeners.enumerated() where listener.perClient.isEnabled && tables[index] == nil {
            guard let table = ClientTable.local(capacity: listener.perClient.tableSize) else {
                throw GatewayError(kind: .listen, message: "cannot allocate the per-client table: \(ListeningSocket.errorText())")
            }
            tables[index] = table
        }
        self.clientTables = tables
        self.clientLane = clientLane
        accessLog = try config.accessLog.map { settings throws(GatewayError) in try AccessLog(settings, logger: logger) }
        guard let segment = metrics ?? MetricsSegment.local(MetricsLayout(config)) else {
            throw GatewayError(kind: .listen, message: "cannot allocate memory for the metrics: \(ListeningSocket.errorText())")
        }
        self.metrics = WorkerMetrics(segment: segment)
        // The loops run before the plugins' init: an instance gets its place on its loop
        // (`wharf_loop *`) there.
        group = MultiThreadedEventLoopGroup(numberOfThreads: config.eventLoops)
        var loops: [PluginLoop] = []
        for (index, eventLoop) in group.makeIterator().enumerated() {
            let loop = LoopContext(eventLoop: eventLoop, loopIndex: index, loopCount: config.eventLoops,
                                   wheelAlarm: .dispatchTimer)
            loop.metricsRegionWords = self.metrics.regionWords
            loop.dispatcher.durations = self.metrics.loop(index)
            loops.append(PluginLoop(loop: loop))
        }
        self.loops = loops
        let generation: Generation
        do {
            generation = try Generation.build(number: generationNumber, config: config, loops: loops,
                                              metrics: PluginMetricsRegistry(segment: segment))
        } catch {
            loops.forEach { $0.loop.deadlines.stopAlarm() }
            try? group.syncShutdownGracefully()
            throw GatewayError(kind: .plugin, message: error.description)
        }
        self.generation = generation
        let everyListenerPumped = config.listeners.allSatisfy { listener in
            Self.servedByPump(listener, library: generation.instance(named: listener.plugin, loopIndex: 0)!.library)
        }
        let scheduling = config.relayPumpScheduling.resolved(everyListenerPumped: everyListenerPumped)
        for loop in loops {
            // On the loop, before anything there can start its pump.
            try? loop.loop.eventLoop.submit { loop.loop.pump.scheduling = scheduling }.wait()
        }
        loopWatch = LoopWatch(loops: loops.map { $0.loop.eventLoop })
        watchdog = StallWatchdog(watch: loopWatch, plugins: Self.plugins(of: generation, config), logger: logger)
        self.loopsByEventLoop = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.loop.eventLoop), $0) })
        loopWatch.start(metrics: self.metrics)
        watchdog.start()
    }

    /// Every plugin instance this gateway runs, with its library.
    public var plugins: [PluginDescription] { Self.plugins(of: generation, config) }

    private static func plugins(of generation: Generation, _ config: GatewayConfig) -> [PluginDescription] {
        config.plugins.compactMap { plugin in
            guard let library = generation.instance(named: plugin.name, loopIndex: 0)?.library else { return nil }
            return PluginDescription(instance: plugin.name, library: library.name, path: library.path,
                                     version: library.version, abi: library.abiVersion)
        }
    }

    /// The event loops, in loop-index order.
    public var eventLoops: [any EventLoop] { loops.map { $0.loop.eventLoop } }

    /// Serves every listener on its socket: `sockets[i]` is `config.listeners[i]`'s, bound by
    /// the supervisor (or by `ListeningSocket.bindGroup` in single-process mode). The event
    /// loops take the descriptors over. Unless `accepting`, nothing is accepted until
    /// `startAccepting`. On failure, listeners already serving are closed again.
    public func start(sockets: [ListeningSocket], accepting: Bool = true) throws(GatewayError) -> [BoundListener] {
        precondition(sockets.count == config.listeners.count, "one socket per listener")
        var bound: [BoundListener] = []
        for (index, (listener, socket)) in zip(config.listeners, sockets).enumerated() {
            do {
                let gate = AcceptGate(paused: accepting ? [] : .notStarted)
                let acceptor = makeAcceptor(for: listener, index: index, gate: gate)
                let library = generation.instance(named: listener.plugin, loopIndex: 0)!.library
                var entry = BoundListener(config: listener, address: socket.boundAddress, port: socket.boundPort,
                                          pluginSummary: "\(library.name) \(library.version)")
                if let pumped = try pumpAcceptor(for: listener, index: index, library: library, socket: socket,
                                                 acceptor: acceptor, gate: gate) {
                    pumped.start(accepting: accepting)
                    serving.withLockedValue { $0.append(.pump(pumped)) }
                    entry.acceptedByPump = true
                } else {
                    let channel = try bootstrap(acceptor).serverChannelOption(.autoRead, value: accepting)
                        .withBoundSocket(socket.descriptor).wait()
                    // NIO listens with its own backlog when it adopts a socket: restore ours.
                    socket.configure(for: listener)
                    serving.withLockedValue { $0.append(.channel(channel, gate)) }
                }
                bound.append(entry)
            } catch {
                stopAccepting()
                throw GatewayError(kind: .listen, message: "\(listener.location): listeners[\(index)]: cannot serve "
                    + "\(listener.address):\(listener.port): \(Self.describe(error))")
            }
        }
        return bound
    }

    /// A relay pump accepts for a listener whose plugin relays at once (see
    /// `PumpAcceptor`); nil: a listening channel does, as for every other listener.
    private func pumpAcceptor(for listener: ListenerConfig, index: Int, library: PluginLibrary, socket: ListeningSocket,
                              acceptor: ListenerAcceptor, gate: AcceptGate) throws -> PumpAcceptor? {
        guard Self.servedByPump(listener, library: library) else { return nil }
        // Listeners spread over the loops' pumps as NIO spreads listening channels.
        let home = loops[index % loops.count]
        guard let pump = try home.loop.eventLoop.submit({ home.loop.pump.running() }).wait() else { return nil }
        return PumpAcceptor(fd: socket.descriptor, pump: pump, home: home, loops: loops, acceptor: acceptor,
                            gate: gate, watch: loopWatch)
    }

    /// Whether a relay pump accepts for the listener: plain TCP or TLS the pump can
    /// terminate itself (not `starttls`), with or without a PROXY header, a plugin that
    /// relays at once, and `pump_accept` not turned off.
    private static func servedByPump(_ listener: ListenerConfig, library: PluginLibrary) -> Bool {
        listener.pumpAccept && library.relaysAtOnce && (listener.tls?.pumpCanTerminate ?? true)
    }

    private func makeAcceptor(for listener: ListenerConfig, index: Int, gate: AcceptGate) -> ListenerAcceptor {
        let limit = listener.maxConnections > 0
            ? ConnectionLimit(maximum: listener.maxConnections, processes: config.processes, rejects: listener.rejectOverLimit)
            : nil
        let accessLog = listener.accessLog ? self.accessLog.map {
            ListenerAccessLog(log: $0, origin: AccessLogOrigin(listener: listener.displayName, plugin: listener.plugin,
                                                               generation: generation.number, worker: getpid()))
        } : nil
        let acceptTLS = listener.tls.flatMap { $0.startTLS ? nil : $0 }
        let stats = ListenerStats(
            name: listener.displayName, logger: logger,
            awaiting: [listener.proxyProtocolAccept ? .proxyHeader : [], acceptTLS != nil ? .tlsHandshake : []],
            counters: (0..<config.eventLoops).map { metrics.listener(index, loop: $0) }, accessLog: accessLog,
            access: listener.access, limit: limit,
            clients: clientTables[index].map { (table: $0, limits: listener.perClient, lane: clientLane) })
        listenerStats.withLockedValue { $0.append(stats) }
        return ListenerAcceptor(listener: listener, stats: stats, generation: generation,
                                loops: loopsByEventLoop, watch: loopWatch, gate: gate, logger: logger)
    }

    private func bootstrap(_ acceptor: ListenerAcceptor) -> ServerBootstrap {
        // The socket options accepted sockets inherit are on the listening socket already
        // (`ListeningSocket.configure`).
        ServerBootstrap(group: group)
            .serverChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try acceptor.initializeServer(channel) } }
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try acceptor.initializeChild(channel) } }
    }

    /// Accepts from every listener (after `start(sockets:accepting: false)`).
    public func startAccepting() {
        for entry in serving.withLockedValue({ $0 }) {
            switch entry {
            case let .channel(channel, gate): channel.eventLoop.execute { gate.set(.notStarted, false) }
            case let .pump(acceptor): acceptor.home.execute { acceptor.gate.set(.notStarted, false) }
            }
        }
    }

    /// Closes the listening sockets; open connections are untouched.
    public func stopAccepting() {
        let entries = serving.withLockedValue { entries in
            defer { entries.removeAll() }
            return entries
        }
        for entry in entries {
            switch entry {
            case let .channel(channel, _): try? channel.close().wait()
            case let .pump(acceptor): acceptor.stop()
            }
        }
    }

    /// Graceful stop: stop accepting; with `quiesce`, every stream closes itself as soon as
    /// it is idle (waiting for a new message with nothing buffered), otherwise streams run on
    /// (a reload retired this worker); what is still open after `drain_timeout_ms` (or when
    /// `closeAllNow` cuts the drain short) is closed, the plugins' shutdown hooks run and the
    /// loops stop. Returns how many connections had to be cut.
    @discardableResult
    public func shutdown(quiesce: Bool = true) -> Int {
        stopAccepting()
        let grace = TimeAmount.milliseconds(Int64(config.drainTimeoutMilliseconds))
        if quiesce { quiesceAll() }
        let drained = loops.map { Self.drain($0.loop, within: grace, cut: forcedCloses) }
        drained.forEach { _ = try? $0.wait() }
        let cut = forcedCloses.withLockedValue { $0 }
        if cut > 0 {
            logger.notice("drain_timeout_ms passed: closed the connections still open", metadata: ["count": "\(cut)"])
        }
        watchdog.stop()
        loopWatch.stop()
        endLoopLevelWork()
        loops.forEach { $0.loop.pump.stop() }
        loops.forEach { $0.loop.deadlines.stopAlarm() }
        generation.shutdownInstances()
        for stats in listenerStats.withLockedValue({ $0 }) where stats.hadFailures {
            logger.info("connections that never reached their plugin: \(stats.summary)")
        }
        loops.forEach { $0.markStopped() }
        stopped.withLockedValue { $0 = true }
        try? group.syncShutdownGracefully()
        accessLog?.flush()
        return cut
    }

    /// Ends every instance's loop-level work once its client connections are gone, before
    /// the shutdown hooks: pools are destroyed, timers complete, loop-level streams close
    /// (each gets two seconds to deliver its close notification).
    private func endLoopLevelWork() {
        let ended = loops.map { pluginLoop -> EventLoopFuture<Void> in
            let eventLoop = pluginLoop.loop.eventLoop
            let seats = generation.seats(onLoop: pluginLoop.loop.loopIndex)
            let done = eventLoop.makePromise(of: Void.self)
            eventLoop.execute {
                let each = seats.map { seat in
                    let ended = eventLoop.makePromise(of: Void.self)
                    seat.end { ended.succeed() }
                    return ended.futureResult
                }
                let giveUp = eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { done.succeed() }
                EventLoopFuture.andAllSucceed(each, on: eventLoop).whenComplete { _ in
                    giveUp.cancel()
                    done.succeed()
                }
            }
            return done.futureResult
        }
        ended.forEach { _ = try? $0.wait() }
    }

    /// Asks every stream to close at its next message boundary. Safe from any thread.
    public func quiesceAll() {
        stopped.withLockedValue { stopped in
            guard !stopped else { return }
            for pluginLoop in loops {
                let loop = pluginLoop.loop
                loop.eventLoop.execute { loop.dispatch { loop.streams.all.forEach { $0.quiesce() } } }
            }
        }
    }

    /// Ends a drain early (a second SIGTERM): every connection still open is closed now.
    /// Safe from any thread.
    public func closeAllNow() {
        stopped.withLockedValue { stopped in
            guard !stopped else { return }
            for pluginLoop in loops {
                let loop = pluginLoop.loop
                loop.eventLoop.execute { Self.closeAll(on: loop, counting: self.forcedCloses) }
            }
        }
    }

    private static func closeAll(on loop: LoopContext, counting cut: NIOLockedValueBox<Int>) {
        let open = loop.streams.count
        guard open > 0 else { return }
        cut.withLockedValue { $0 += open }
        loop.dispatch { loop.streams.all.forEach { $0.close(reason: .shuttingDown, graceful: false) } }
    }

    /// Completes once no stream is left on `loop`. Past the grace period the rest are closed
    /// at once (and counted in `cut`), and get two more seconds to finish.
    private static func drain(_ loop: LoopContext, within grace: TimeAmount,
                              cut: NIOLockedValueBox<Int>) -> EventLoopFuture<Void> {
        let done = loop.eventLoop.makePromise(of: Void.self)
        loop.eventLoop.execute {
            let forceClose = loop.eventLoop.assumeIsolated().scheduleTask(in: grace) { closeAll(on: loop, counting: cut) }
            let giveUp = loop.eventLoop.assumeIsolated().scheduleTask(in: grace + .seconds(2)) { done.succeed() }
            loop.whenNoStreams {
                forceClose.cancel()
                giveUp.cancel()
                done.succeed()
            }
        }
        return done.futureResult
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode)).lowercased()
        }
        return "\(error)"
    }
}
