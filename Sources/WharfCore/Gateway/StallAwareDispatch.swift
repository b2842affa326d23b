import NIOCore
import NIOPosix

/// In a listening channel's pipeline: NIO hands each accepted connection to the next event
/// loop in turn, stalled or not. A connection given to a loop that is stalled (a plugin
/// callback blocking it) would wait for the whole stall; this moves its socket to a loop
/// that turns (the same channel setup, on a fresh channel there) and lets the stalled loop
/// drop its unused copy when it runs again. If every loop is stalled, it stays.
final class StallAwareDispatch: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let watch: LoopWatch
    private let noDelay: Bool
    private let initializer: @Sendable (any Channel) throws -> Void

    init(watch: LoopWatch, listener: ListenerConfig, initializer: @escaping @Sendable (any Channel) throws -> Void) {
        self.watch = watch
        self.noDelay = listener.tcpNoDelay
        self.initializer = initializer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = Self.unwrapInboundIn(data)
        guard let index = watch.index(of: child.eventLoop), watch.isStalled(index),
              let healthy = watch.healthyLoop(after: index),
              let fd = SocketHandoff.descriptor(of: child), let copy = SocketHandoff.duplicate(fd) else {
            context.fireChannelRead(data)
            return
        }
        // Never registered: its close only closes NIO's descriptor, once the stalled loop runs.
        child.close(promise: nil)
        let initializer = self.initializer
        ClientBootstrap(group: healthy)
            .channelOption(.tcpOption(.tcp_nodelay), value: noDelay ? 1 : 0)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try initializer(channel) } }
            .withConnectedSocket(copy)
            .whenFailure { _ in } // NIO closes the socket it was given
    }
}
