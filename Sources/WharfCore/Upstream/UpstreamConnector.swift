import NIOCore
import NIOPosix

/// How to open an outgoing stream, with defaults filled in (a plugin's
/// `wharf_connect_options` is read into this in Plugin/).
public struct ConnectOptions: Sendable {
    public var timeout: TimeAmount = .seconds(10)
    public var noDelay = true
    public var sourceAddress: SocketAddress?
    public var maxBufferSize: Int?
    public var readChunkSize = 65536
    /// TCP keepalive for the new socket; nil: the origin's listener setting.
    public var keepalive: TCPKeepalive?
    /// TLS after connecting (inside the same deadline).
    var tls: ClientTLS?

    public init() {}

    /// Plain options with TLS from `wharf client --tls`; nil if the CA file is unusable.
    public static func withTLS(verify: Bool, caFile: String?, serverName: String?) -> ConnectOptions? {
        let key = ClientTLS.Key(noVerify: !verify, caFile: caFile, alpn: nil, certificateFile: nil, keyFile: nil)
        guard let tls = ClientTLS(key, serverName: serverName) else { return nil }
        var options = ConnectOptions()
        options.tls = tls
        return options
    }
}

/// Stands in for the network when outgoing streams must not reach it (the plugin test kit's
/// fake upstreams).
protocol UpstreamDialer: AnyObject {
    func dial(host: String, port: Int, options: ConnectOptions, streamOptions: StreamOptions, holdsDrain: Bool,
              owner: any StreamOwner, connectFailed: @escaping (StreamError) -> Void)
}

/// Opens outgoing streams (Tornado's TCPClient): a ClientBootstrap on the origin's loop,
/// with the same stream handler accepted connections get. The owner hears the outcome
/// exactly once: `streamOpened` (connected, and the TLS handshake done), or
/// `streamAbandoned` / `connectFailed` with the reason.
enum UpstreamConnector {
    static func connect(on loop: LoopContext, host: String, port: Int, options: ConnectOptions,
                        streamOptions: StreamOptions, holdsDrain: Bool = true, owner: any StreamOwner,
                        connectFailed: @escaping (StreamError) -> Void) {
        if let dialer = loop.dialer {
            return dialer.dial(host: host, port: port, options: options, streamOptions: streamOptions,
                               holdsDrain: holdsDrain, owner: owner, connectFailed: connectFailed)
        }
        let receiveAllocator = StreamChannelOptions.receiveAllocator(chunkSize: options.readChunkSize, fixed: false)
        let noDelay = options.noDelay
        let keepalive = options.keepalive ?? streamOptions.keepalive
        let tls = options.tls
        // Called on the loop; the channel initializer runs there too (checked, not assumed).
        let boundOwner = NIOLoopBound(owner, eventLoop: loop.eventLoop)
        // One deadline covers resolution, connecting and the TLS handshake.
        let deadline = loop.eventLoop.now + options.timeout
        var bootstrap = ClientBootstrap(group: loop.eventLoop)
            .connectTimeout(options.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try StreamChannelOptions.apply(to: channel, receiveAllocator: receiveAllocator)
                    // ClientBootstrap already turns Nagle off (its default): only a plugin
                    // asking to keep it on needs the call.
                    try StreamChannelOptions.applySocketOptions(to: channel, noDelay: noDelay, keepalive: keepalive,
                                                                nagleAlreadyOff: true)
                    var handlerOptions = streamOptions
                    handlerOptions.timeouts.handshake = max(.milliseconds(1), deadline - channel.eventLoop.now)
                    let handler = IOStreamHandler(loop: loop, options: handlerOptions, streamID: loop.nextStreamID(),
                                                  isClient: true, awaiting: tls == nil ? [] : .tlsHandshake,
                                                  holdsDrain: holdsDrain, owner: boundOwner.value)
                    handler.facts.connectHost = host
                    if let tls {
                        handler.facts.serverName = tls.serverName(defaultingTo: host)
                        try channel.pipeline.syncOperations.addHandler(tls.makeHandler(serverName: host))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        if let source = options.sourceAddress { bootstrap = bootstrap.bind(to: source) }
        // An IP literal needs no resolver: connecting to it directly skips NIO's resolution
        // and Happy Eyeballs machinery (a thread hop and timers per connection).
        let connected = if let address = try? SocketAddress(ipAddress: host, port: port) {
            bootstrap.connect(to: address)
        } else {
            bootstrap.connect(host: host, port: port)
        }
        connected.assumeIsolated().whenFailure { error in
            let failure = classify(error)
            loop.enqueue(.completion { connectFailed(failure) })
        }
    }

    /// Maps NIO's connect failures to the ABI's distinct codes.
    static func classify(_ error: any Error) -> StreamError {
        if let error = error as? ChannelError, case .connectTimeout = error { return .timedOut }
        if let error = error as? NIOConnectionError {
            // No connection was even attempted: the name gave no address.
            if let failure = error.connectionErrors.last { return classify(failure.error) }
            return .unresolved
        }
        if let error = error as? IOError { return StreamError(connectErrno: error.errnoCode) }
        if error is SocketAddressError { return .unresolved }
        if let error = error as? EventLoopError, case .shutdown = error { return .shuttingDown }
        return .io
    }
}
