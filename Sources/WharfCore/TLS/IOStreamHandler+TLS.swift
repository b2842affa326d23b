import CWharf
import NIOCore
import NIOSSL
import NIOTLS

/// TLS on a stream: recording a finished handshake, and start_tls (an upgrade in place).
extension IOStreamHandler {
    func tlsEstablished(context: ChannelHandlerContext, alpn: String?) {
        let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self)
        facts.tls = TLSFacts(version: TLSFacts.wireVersion(handler?.tlsVersion), alpn: alpn ?? "",
                             peerSubject: TLSFacts.subject(of: handler?.peerCertificate))
        if lifecycle == .starting {
            preambleStepDone(.tlsHandshake, context: context)
        } else if tlsUpgrade != nil {
            handshakeTimer?.cancel()
            handshakeTimer = nil
            finishTLSUpgrade(nil)
            updateReadDemand()
        }
    }

    /// Completes a start_tls exactly once, through the dispatcher (never inside a host call).
    func finishTLSUpgrade(_ failure: StreamError?) {
        guard let (callback, userdata) = tlsUpgrade else { return }
        tlsUpgrade = nil
        let handle = handle
        loop.enqueue(.completion { callback(userdata, handle, failure?.code ?? WHARF_OK) })
    }

    /// start_tls: the stream must be idle (nothing pending, buffered or unsent).
    func startTLS(client: ClientTLS?, serverName: String?, callback: wharf_tls_cb,
                  userdata: UnsafeMutableRawPointer?) -> Int32 {
        guard lifecycle == .open, let context else { return WHARF_E_CLOSED }
        guard facts.tls == nil else { return WHARF_E_UNSUPPORTED }
        guard !isRelayed, tlsUpgrade == nil, machine.pending == nil, machine.bufferedBytes == 0, !hasUnsentWrites,
              !hasShutDownOutput, !machine.inputEnded else { return WHARF_E_BUSY }
        let handlers: [any ChannelHandler]
        if isClient {
            guard let client else { return WHARF_E_INVALID }
            guard let handler = try? client.makeHandler(serverName: serverName) else { return WHARF_E_INVALID }
            facts.serverName = client.serverName(defaultingTo: serverName)
            handlers = [handler]
        } else {
            guard client == nil else { return WHARF_E_INVALID }
            guard let tls = options.serverTLS, tls.startTLS else { return WHARF_E_UNSUPPORTED }
            handlers = ServerTLSHandlers.make(tls, for: self)
        }
        do {
            try context.pipeline.syncOperations.addHandlers(handlers, position: .before(self))
        } catch {
            return WHARF_E_CLOSED
        }
        tlsUpgrade = (callback, userdata)
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: options.handshakeTimeout) {
            TLSLog.logger.info("start_tls handshake timed out", metadata: ["stream": "\(self.streamID)"])
            self.finishTLSUpgrade(.timedOut)
            self.close(reason: .timedOut, graceful: false)
        }
        updateReadDemand()
        return WHARF_OK
    }
}

/// The handlers that terminate TLS for a listener: an SNI reader that, once it knows the
/// name the client asked for, records it and puts the matching certificate's TLS handler
/// in its own place.
enum ServerTLSHandlers {
    static func make(_ tls: ServerTLS, for stream: IOStreamHandler) -> [any ChannelHandler] {
        let eventLoop = stream.loop.eventLoop
        let sni = ByteToMessageHandler(SNIHandler { [weak stream] result in
            guard let stream, let channel = stream.channel else {
                return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            var name: String?
            if case let .hostname(host) = result { name = host.lowercased() }
            stream.facts.serverName = name
            let handler = NIOSSLServerHandler(context: tls.context(forServerName: name))
            return eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(handler, position: .before(stream))
            }
        })
        return [sni]
    }
}
