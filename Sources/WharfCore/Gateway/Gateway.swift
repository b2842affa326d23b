import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failure to start serving: a plugin refused, or a listener could not bind.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
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
    private let loops: [LoopContext]
    private let loopsByEventLoop: [ObjectIdentifier: LoopContext]
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
            throw GatewayError(message: error.description)
        }
        self.generation = generation
        group = MultiThreadedEventLoopGroup(numberOfThreads: config.workers)
        var loops: [LoopContext] = []
        for (index, eventLoop) in group.makeIterator().enumerated() {
            loops.append(LoopContext(eventLoop: eventLoop, loopIndex: index, loopCount: config.workers))
        }
        self.loops = loops
        self.loopsByEventLoop = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.eventLoop), $0) })
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
                throw GatewayError(message: "\(listener.location): listeners[\(index)]: cannot listen on "
                    + "\(listener.address):\(listener.port): \(Self.describe(error))")
            }
        }
        return bound
    }

    private func bootstrap(for listener: ListenerConfig) -> ServerBootstrap {
        let loopsByEventLoop = self.loopsByEventLoop
        let generation = self.generation
        let options = StreamOptions(maxBufferSize: listener.maxBufferSize,
                                    closeLinger: .milliseconds(Int64(listener.closeLingerMilliseconds)),
                                    handshakeTimeout: .milliseconds(Int64(listener.handshakeTimeoutMilliseconds)),
                                    serverTLS: listener.tls)
        // TLS terminated at accept, unless the plugin upgrades later with start_tls.
        let acceptTLS = listener.tls.flatMap { $0.startTLS ? nil : $0 }
        let awaiting: Preamble = [listener.proxyProtocolAccept ? .proxyHeader : [],
                                  acceptTLS != nil ? .tlsHandshake : []]
        let stats = ListenerStats(name: listener.displayName, logger: logger)
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
        return bootstrap.childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                guard let loop = loopsByEventLoop[ObjectIdentifier(channel.eventLoop)],
                      let instance = generation.instance(named: pluginName, loopIndex: loop.loopIndex) else {
                    throw GatewayError(message: "no plugin instance for this event loop")
                }
                try StreamChannelOptions.apply(to: channel, noDelay: noDelay, receiveAllocator: receiveAllocator)
                let handler = IOStreamHandler(loop: loop, options: options, streamID: loop.nextStreamID(),
                                              awaiting: awaiting, onOpen: { instance.handleStream($0) },
                                              onAbandoned: { stats.preambleFailed($0, $1, awaiting: awaiting) })
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

    /// Graceful stop: stop accepting; close connections as soon as they are idle (waiting
    /// for a new message with nothing buffered); give busy ones `shutdown_grace_ms`; then
    /// close what is left, run the plugins' shutdown hooks and stop the event loops.
    public func shutdown() {
        stopAccepting()
        let graceEnds = NIODeadline.now() + .milliseconds(Int64(config.shutdownGraceMilliseconds))
        repeat {
            forEachStream { stream in
                if stream.isIdle { stream.close(reason: .shuttingDown, graceful: true) }
            }
            if liveStreamCount() == 0 { break }
            usleep(50_000)
        } while NIODeadline.now() < graceEnds
        let stillOpen = liveStreamCount()
        if stillOpen > 0 {
            logger.info("closing connections still open after the grace period", metadata: ["open": "\(stillOpen)"])
            forEachStream { $0.close(reason: .shuttingDown, graceful: false) }
            waitForStreams(until: .now() + .seconds(2))
        }
        loops.forEach { $0.stopPump() }
        generation.shutdownInstances()
        for stats in listenerStats.withLockedValue({ $0 }) where stats.hadFailures {
            logger.info("connections that never reached their plugin: \(stats.summary)")
        }
        loops.forEach { $0.markStopped() }
        try? group.syncShutdownGracefully()
    }

    private func forEachStream(_ body: @escaping @Sendable (IOStreamHandler) -> Void) {
        let futures = loops.map { loop in
            loop.eventLoop.submit { loop.dispatch { loop.allStreams().forEach(body) } }
        }
        for future in futures { try? future.wait() }
    }

    private func liveStreamCount() -> Int {
        loops.map { loop in (try? loop.eventLoop.submit { loop.liveStreams }.wait()) ?? 0 }.reduce(0, +)
    }

    private func waitForStreams(until deadline: NIODeadline) {
        while liveStreamCount() > 0, NIODeadline.now() < deadline {
            usleep(20_000)
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode)).lowercased()
        }
        return "\(error)"
    }
}
