import NIOCore
import NIOSSL
import NIOTLS

/// The handlers that terminate TLS for a listener: an SNI reader that, once it knows the
/// name the client asked for, records it and puts the matching certificate's TLS handler
/// in its own place, in front of the stream.
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
