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
}

/// The running daemon: owns the event loops, the current generation of plugin
/// instances, and the listening sockets. `start` binds; `shutdown` drains and stops.
public final class Gateway: @unchecked Sendable {
    public let config: GatewayConfig
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let loops: [PluginLoop]
    private let loopsByEventLoop: [ObjectIdentifier: PluginLoop]
    private let generation: Generation
    private let serverChannels = NIOLockedValueBox<[any Channel]>([])
    private let listenerStats = NIOLockedValueBox<[ListenerStats]>([])

    public init(config: GatewayConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let generation: Generation
        do {
            generation = try Generation.build(number: 1, config: config, loopCount: config.workers)
        } catch {
            throw GatewayError(kind: .plugin, message: error.description)
        }
        self.generation = generation
        group = MultiThreadedEventLoopGroup(numberOfThreads: config.workers)
        var loops: [PluginLoop] = []
        for (index, eventLoop) in group.makeIterator().enumerated() {
            let loop = LoopContext(eventLoop: eventLoop, loopIndex: index, loopCount: config.workers,
                                   wheelAlarm: .dispatchTimer)
            loops.append(PluginLoop(loop: loop))
        }
        self.loops = loops
        self.loopsByEventLoop = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.loop.eventLoop), $0) })
    }

    /// Binds every listener. On failure, listeners already bound are closed again.
    public func start() throws -> [BoundListener] {
        var bound: [BoundListener] = []
        for (index, listener) in config.listeners.enumerated() {
            do {
                let channel = try bootstrap(for: listener).bind(host: listener.address, port: listener.port).wait()
                serverChannels.withLockedValue { $0.append(channel) }
                let local = channel.localAddress
                let library = generation.instance(named: listener.plugin, loopIndex: 0)!.library
                bound.append(BoundListener(config: listener, address: local?.ipAddress ?? listener.address,
                                           port: local?.port ?? listener.port,
                                           pluginSummary: "\(library.name) \(library.version)"))
            } catch {
                stopAccepting()
                throw GatewayError(kind: .listen, message: "\(listener.location): listeners[\(index)]: cannot listen on "
                    + "\(listener.address):\(listener.port): \(Self.describe(error))")
            }
        }
        return bound
    }

    private func bootstrap(for listener: ListenerConfig) -> ServerBootstrap {
        let loopsByEventLoop = self.loopsByEventLoop
        let generation = self.generation
        let options = listener.streamOptions
        let serverTLS = listener.tls
        // TLS terminated at accept, unless the plugin upgrades later with start_tls.
        let acceptTLS = listener.tls.flatMap { $0.startTLS ? nil : $0 }
        let awaiting: Preamble = [listener.proxyProtocolAccept ? .proxyHeader : [],
                                  acceptTLS != nil ? .tlsHandshake : []]
        let stats = ListenerStats(name: listener.displayName, logger: logger, awaiting: awaiting)
        listenerStats.withLockedValue { $0.append(stats) }
        let pluginName = listener.plugin
        let noDelay = listener.tcpNoDelay
        let receiveAllocator = StreamChannelOptions.receiveAllocator(chunkSize: listener.effectiveReadChunkSize,
                                                                     fixed: listener.fixedReadChunks)
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(listener.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if listener.reusePort {
            // NIO names no constant for SO_REUSEPORT; the raw option is the same call.
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)),
                value: 1)
        }
        // Accepted sockets inherit these from the listening socket (Linux): set once here.
        for (option, value) in StreamChannelOptions.socketOptions(noDelay: noDelay, keepalive: options.keepalive) {
            bootstrap = bootstrap.serverChannelOption(option, value: value)
        }
        return bootstrap.childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                guard let pluginLoop = loopsByEventLoop[ObjectIdentifier(channel.eventLoop)],
                      let instance = generation.instance(named: pluginName, loopIndex: pluginLoop.loop.loopIndex) else {
                    throw GatewayError(kind: .plugin, message: "no plugin instance for this event loop")
                }
                try StreamChannelOptions.apply(to: channel, receiveAllocator: receiveAllocator)
                let adapter = PluginStream(pluginLoop: pluginLoop, abiMinor: instance.library.abiMinor,
                                           serverTLS: serverTLS, role: .accepted(instance, stats))
                let loop = pluginLoop.loop
                let handler = IOStreamHandler(loop: loop, options: options, streamID: loop.nextStreamID(),
                                              awaiting: awaiting, owner: adapter)
                let pipeline = channel.pipeline.syncOperations
                if awaiting.contains(.proxyHeader) { try pipeline.addHandler(ProxyProtocolDecoder()) }
                if let acceptTLS { try pipeline.addHandlers(ServerTLSHandlers.make(acceptTLS, for: handler)) }
                try pipeline.addHandler(handler)
            }
        }
    }

    /// Closes the listening sockets; open connections are untouched.
    public func stopAccepting() {
        let channels = serverChannels.withLockedValue { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { try? channel.close().wait() }
    }

    /// Graceful stop: stop accepting; every stream closes itself as soon as it is idle
    /// (waiting for a new message with nothing buffered); busy ones get `shutdown_grace_ms`;
    /// then what is left is closed, the plugins' shutdown hooks run and the loops stop.
    public func shutdown() {
        stopAccepting()
        let grace = TimeAmount.milliseconds(Int64(config.shutdownGraceMilliseconds))
        let drained = loops.map { Self.drain($0.loop, within: grace) }
        let stillOpen = drained.map { (try? $0.wait()) ?? 0 }.reduce(0, +)
        if stillOpen > 0 {
            logger.info("closed connections still open after the grace period", metadata: ["open": "\(stillOpen)"])
        }
        loops.forEach { $0.loop.pump.stop() }
        loops.forEach { $0.loop.deadlines.stopAlarm() }
        generation.shutdownInstances()
        for stats in listenerStats.withLockedValue({ $0 }) where stats.hadFailures {
            logger.info("connections that never reached their plugin: \(stats.summary)")
        }
        loops.forEach { $0.markStopped() }
        try? group.syncShutdownGracefully()
    }

    /// Quiesces every stream on `loop`; the future completes, with the number of streams
    /// that had to be cut, once none is left. Past the grace period the rest are closed at
    /// once, and get two more seconds to finish.
    private static func drain(_ loop: LoopContext, within grace: TimeAmount) -> EventLoopFuture<Int> {
        let done = loop.eventLoop.makePromise(of: Int.self)
        loop.eventLoop.execute {
            var cut = 0
            loop.dispatch { loop.streams.all.forEach { $0.quiesce() } }
            let forceClose = loop.eventLoop.assumeIsolated().scheduleTask(in: grace) {
                cut = loop.streams.count
                loop.dispatch { loop.streams.all.forEach { $0.close(reason: .shuttingDown, graceful: false) } }
            }
            let giveUp = loop.eventLoop.assumeIsolated().scheduleTask(in: grace + .seconds(2)) { done.succeed(cut) }
            loop.whenNoStreams {
                forceClose.cancel()
                giveUp.cancel()
                done.succeed(cut)
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
