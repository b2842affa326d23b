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
///
/// On a listener with a PROXY header or TLS the pump reads the header and runs the handshake
/// first (`PumpPreamble`, during which it owns the socket), and the stream keeps the TLS
/// session (`tls`), which `connect_relay` hands to the pump with the socket. A channel built for such a stream carries plain bytes over a
/// socket pair that the pump relays to and from the TLS side (`TLSBridge`).
final class BareSocket {
    let fd: CInt
    let noDelay: Bool
    let receiveAllocator: any RecvByteBufferAllocator
    /// The preamble the pump is reading on the socket, which it owns meanwhile.
    var preamble: PumpPreamble?
    /// The TLS session the handshake established.
    var tls: PumpTLSSession?

    init(fd: CInt, noDelay: Bool, receiveAllocator: any RecvByteBufferAllocator) {
        self.fd = fd
        self.noDelay = noDelay
        self.receiveAllocator = receiveAllocator
    }

    /// Closes the socket of a stream that ended without a channel or a relay taking it
    /// (not while the pump's preamble holds it). `reset`: RST; otherwise a TLS stream says
    /// close_notify first, unless `failed` (the socket broke: nothing can be said over it).
    func close(reset: Bool = false, failed: Bool = false) {
        guard preamble == nil else { return }
        if reset {
            Descriptor.resetOnClose(fd)
        } else if !failed {
            tls?.shutdown()
        }
        _ = Glibc.close(fd)
    }
}

extension IOStreamHandler {
    /// Opens the stream on `socket`, with the addresses `accept` and the listener gave.
    func open(bare socket: BareSocket, local: SocketAddress?, remote: SocketAddress?) {
        bareSocket = socket
        facts.detachedAddresses = (local, remote)
        if case .open = machine.activate(now: now) { open() }
    }

    /// Opens the stream on `socket` once the pump has read its preamble: a PROXY header
    /// (`proxyHeader`), then a TLS handshake with `tls`'s certificates. The stream's handshake
    /// deadline bounds it, as on a channel.
    func open(bare socket: BareSocket, local: SocketAddress?, remote: SocketAddress?, proxyHeader: Bool,
              tls: ServerTLS?) {
        bareSocket = socket
        facts.detachedAddresses = (local, remote)
        guard case .readPreamble = machine.activate(now: now) else { return }
        rearmTimer() // the handshake deadline
        var session: PumpTLSSession?
        if let tls {
            session = PumpTLSSession(tls, fd: socket.fd)
            if session == nil { return pumpPreambleFailed(.io) }
        }
        guard let pump = loop.pump.running() else { return pumpPreambleFailed(.io) }
        let preamble = PumpPreamble(fd: socket.fd, proxyHeader: proxyHeader, session: session, owner: self)
        socket.preamble = preamble
        pump.send(.preamble(preamble))
    }

    /// The channel's context, built first if the stream is still on its bare socket; nil
    /// once the channel is gone (or could not be built), and during the pump's preamble.
    var liveContext: ChannelHandlerContext? {
        if let bareSocket, bareSocket.preamble == nil { buildChannel(on: bareSocket) }
        return context
    }

    /// Ends a stream still on its bare socket without building a channel to close: the
    /// socket closes (a pump's preamble is called off) and the stream ends as if a
    /// channel's had. `reset`: RST; `failed`: the socket broke, nothing more is said.
    func closeBare(reset: Bool, failed: Bool) {
        guard let socket = bareSocket else { return }
        bareSocket = nil
        if let preamble = socket.preamble {
            loop.pump.running()?.send(.cancelPreamble(preamble))
        } else {
            socket.close(reset: reset, failed: failed)
        }
        channelEnded()
    }

    /// Registers a channel for the bare socket on this loop. `withConnectedSocket` called on
    /// the loop, with an initializer that completes at once, registers and activates the
    /// channel before it returns, so the caller carries on with a live context.
    private func buildChannel(on socket: BareSocket) {
        precondition(loop.eventLoop.inEventLoop, "a stream's channel is built on its own loop")
        bareSocket = nil
        var fd = socket.fd
        if let tls = socket.tls {
            // The addresses stay the TCP peer's: the channel's socket is one end of a pair.
            guard let plain = TLSBridge.start(socket, tls, for: self) else {
                socket.close(reset: true)
                return channelEnded()
            }
            fd = plain
        } else {
            if detachedAddresses != nil { facts.detachedAddresses = nil } // the channel knows them from now on
        }
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
            .withConnectedSocket(fd)
        // NIO closed the socket if it failed: the stream ends as if its peer had reset it.
        built.assumeIsolated().whenFailure { _ in handler.value.channelEnded() }
    }
}

extension IOStreamHandler: PumpPreambleOwner {
    /// On the loop: the pump's preamble ended. A stream that gave up on it meanwhile
    /// (`closeBare`) only closes the socket it no longer wants.
    func pumpPreambleFinished(_ preamble: PumpPreamble, _ failure: StreamError?) {
        guard let socket = bareSocket, socket.preamble === preamble else {
            if failure == nil { SocketHandoff.close(preamble.fd) }
            return
        }
        socket.preamble = nil
        if let failure {
            bareSocket = nil // the pump closed the socket
            return pumpPreambleFailed(failure, preamble.failureDetail)
        }
        if let header = preamble.proxied { facts.proxied = header }
        if let session = preamble.session {
            socket.tls = session
            let established = session.facts
            facts.tls = established.tls
            facts.serverName = established.serverName
            // See `acknowledgeHandshakeNow`: the client's Finished is answered at once.
            Descriptor.setSocketOption(socket.fd, CInt(IPPROTO_TCP), TCP_QUICKACK, 1)
        }
        // Each step done; the last one opens the stream.
        if preamble.proxied != nil { preambleStepDone(.proxyHeader) }
        if preamble.session != nil { preambleStepDone(.tlsHandshake) }
    }

    /// The preamble failed or never began: the stream never opens. A socket still here is
    /// one the pump never had; the pump closed any other.
    private func pumpPreambleFailed(_ reason: StreamError, _ error: (any Error)? = nil) {
        if let socket = bareSocket { SocketHandoff.close(socket.fd) }
        bareSocket = nil
        _ = machine.preambleFailed(reason)
        abandonError = error
        channelEnded()
    }
}

/// A channel for a stream whose TLS the pump terminated (a plugin that said it relays at
/// once, then read or wrote itself): the channel gets one end of a socket pair, and the pump
/// relays the other end to the TLS socket as it would an upstream. The plugin cannot tell;
/// it costs a hop through the pump per message, which only a plugin whose hint was wrong pays.
/// An abort reaches the client as a close (a socket pair carries no reset).
enum TLSBridge {
    /// The channel's end of the pair, or nil if no pair could be made.
    static func start(_ socket: BareSocket, _ tls: PumpTLSSession, for stream: IOStreamHandler) -> CInt? {
        guard let pump = stream.loop.pump.running() else { return nil }
        var ends: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue),
                         0, &ends) == 0 else { return nil }
        let idle = stream.idleTimeout?.nanoseconds ?? 0
        let pair = PumpedPair(fdA: socket.fd, fdB: ends[0], owner: Owner(eventLoop: stream.loop.eventLoop),
                              idleTimeoutNanos: idle, closeLingerNanos: stream.closeLinger.nanoseconds)
        pair.terminateTLS(tls)
        pair.endsWithSideB = true
        pair.lifetimeDeadline = stream.lifetimeDeadline.map { Int64($0.uptimeNanoseconds) }
        pump.send(.add(pair))
        return ends[1]
    }

    /// The pair's end only closes what is left open.
    private final class Owner: PumpPairOwner {
        let eventLoop: any EventLoop
        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }
        func pumpConnected() {}
        func pumpFinished(_ outcome: PumpOutcome) { outcome.openDescriptors.forEach(SocketHandoff.close) }
    }
}
