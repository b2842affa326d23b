import NIOCore
import NIOSSL

/// TLS on a stream: a finished handshake's facts, and start_tls (an upgrade in place).
extension IOStreamHandler {
    /// start_tls: once the machine agrees the stream is idle, adds what `handlers` makes
    /// (the TLS handler, or the SNI reader that installs one) in front of this one. A
    /// `StreamError` thrown by `handlers` refuses the upgrade and leaves the stream as it was.
    func startTLS(token: CompletionToken, handlers: () throws(StreamError) -> [any ChannelHandler]) -> StreamError? {
        guard let context else { return .closed }
        guard facts.tls == nil else { return .unsupported }
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
        switch machine.tlsHandshakeCompleted(now: now) {
        case .none: break
        case .open: open()
        case let .upgraded(token):
            completeUpgrade(token, nil)
            updateReadDemand()
        }
    }

    /// Completes a start_tls exactly once, through the dispatcher (never inside a host call).
    func completeUpgrade(_ token: CompletionToken, _ error: StreamError?) {
        loop.enqueue(.completion { [self] in owner?.streamUpgraded(self, token, error) })
    }
}
