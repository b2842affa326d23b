import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connection accepted by a relay pump (`PumpAcceptor`), before any channel holds it.
///
/// A plugin that declares WHARF_PLUGIN_RELAYS_AT_ONCE mostly hands its client straight to
/// `connect_relay`, which gives the socket to the pump: building a NIO channel for it first
/// (registration, pipeline, handler contexts, then finding its descriptor again and
/// deregistering) would be most of the connection's cost. Such a stream opens on its bare
/// socket instead. The first operation that needs a channel builds it then, on the loop and
/// synchronously, with the same options an accepted channel gets; the plugin cannot tell.
final class BareSocket {
    let fd: CInt
    let noDelay: Bool
    let receiveAllocator: any RecvByteBufferAllocator

    init(fd: CInt, noDelay: Bool, receiveAllocator: any RecvByteBufferAllocator) {
        self.fd = fd
        self.noDelay = noDelay
        self.receiveAllocator = receiveAllocator
    }

    /// Closes the socket of a stream that ended without a channel or a relay taking it.
    func close() { _ = Glibc.close(fd) }
}

extension IOStreamHandler {
    /// Opens the stream on `socket`, with the addresses `accept` and the listener gave.
    func open(bare socket: BareSocket, local: SocketAddress?, remote: SocketAddress?) {
        bareSocket = socket
        facts.detachedAddresses = (local, remote)
        if case .open = machine.activate(now: now) { open() }
    }

    /// The channel's context, built first if the stream is still on its bare socket; nil
    /// once the channel is gone (or could not be built).
    var liveContext: ChannelHandlerContext? {
        if let bareSocket { buildChannel(on: bareSocket) }
        return context
    }

    /// Registers a channel for the bare socket on this loop. `withConnectedSocket` called on
    /// the loop, with an initializer that completes at once, registers and activates the
    /// channel before it returns, so the caller carries on with a live context.
    private func buildChannel(on socket: BareSocket) {
        precondition(loop.eventLoop.inEventLoop, "a stream's channel is built on its own loop")
        bareSocket = nil
        facts.detachedAddresses = nil // the channel knows them from now on
        let handler = NIOLoopBound(self, eventLoop: loop.eventLoop)
        let allocator = socket.receiveAllocator
        let built = ClientBootstrap(group: loop.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: socket.noDelay ? 1 : 0)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try StreamChannelOptions.apply(to: channel, receiveAllocator: allocator)
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
            .withConnectedSocket(socket.fd)
        // NIO closed the socket if it failed: the stream ends as if its peer had reset it.
        built.assumeIsolated().whenFailure { _ in handler.value.channelEnded() }
    }
}
