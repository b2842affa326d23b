import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// TLS on a stream: a finished handshake's facts, and start_tls (an upgrade in place).
extension IOStreamHandler {
    /// start_tls: once the machine agrees the stream is idle, adds what `handlers` makes
    /// (the TLS handler, or the SNI reader that installs one) in front of this one. A
    /// `StreamError` thrown by `handlers` refuses the upgrade and leaves the stream as it was.
    func startTLS(token: CompletionToken, handlers: () throws(StreamError) -> [any ChannelHandler]) -> StreamError? {
        guard let context = liveContext else { return .closed }
        guard !hasTLS else { return .unsupported }
        if let refusal = machine.startTLS(token: token, hasUnsentWrites: hasUnsentWrites, now: now) {
            return refusal
        }
        do {
            try context.pipeline.syncOperations.addHandlers(try handlers(), position: .before(self))
        } catch {
            machine.upgradeRefused()
            return (error as? StreamError) ?? .closed
        }
        rearmTimer()
        updateReadDemand()
        return nil
    }

    func tlsEstablished(context: ChannelHandlerContext, alpn: String?) {
        let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self)
        facts.tls = TLSFacts(version: TLSFacts.wireVersion(handler?.tlsVersion), alpn: alpn ?? "",
                             peerSubject: TLSFacts.subject(of: handler?.peerCertificate))
        if !isClient { acknowledgeHandshakeNow(context) }
        switch machine.tlsHandshakeCompleted(now: now) {
        case .none: break
        case .open: open()
        case let .upgraded(token):
            completeUpgrade(token, nil)
            updateReadDemand()
        }
    }

    /// BoringSSL holds a TLS 1.3 server's session tickets until the server next writes (and
    /// NIOSSL cannot make the zero-byte write that would flush them), so nothing of ours
    /// answers the client's Finished. Meanwhile a client with Nagle on (most: ab, curl, Go)
    /// holds its first request until that Finished is acknowledged, and Linux delays the ACK
    /// by 40 ms: 40 ms per connection. TCP_QUICKACK sends the pending ACK at once.
    private func acknowledgeHandshakeNow(_ context: ChannelHandlerContext) {
        let quickAck = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_QUICKACK))
        try? context.channel.syncOptions?.setOption(quickAck, value: 1)
    }

    /// Completes a start_tls exactly once, through the dispatcher (never inside a host call).
    func completeUpgrade(_ token: CompletionToken, _ error: StreamError?) {
        loop.enqueue(.completion { [self] in
            if machine.state != .finished { owner.streamUpgraded(self, token, error) }
        })
    }
}
