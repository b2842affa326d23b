import CWharf
import NIOCore
import NIOPosix

/// What a plugin asked for in `wharf_connect_options`, with defaults filled in.
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

    /// Reads the C struct as far as the caller's `struct_size` says (older plugins pass a
    /// shorter one). Nil if a field is invalid.
    init?(_ pointer: UnsafePointer<wharf_connect_options>?) {
        guard let pointer else { return }
        var raw = wharf_connect_options()
        let size = min(Int(pointer.pointee.struct_size), MemoryLayout<wharf_connect_options>.size)
        guard size >= 4 else { return nil }
        withUnsafeMutableBytes(of: &raw) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: size))
        }
        if raw.timeout_ms > 0 { timeout = .milliseconds(Int64(raw.timeout_ms)) }
        noDelay = raw.nodelay != 0 || size < MemoryLayout.offset(of: \wharf_connect_options.nodelay)! + 4
        if raw.max_buffer_size > 0 { maxBufferSize = Int(clamping: raw.max_buffer_size) }
        if let address = raw.source_address {
            guard raw.source_port <= 65535,
                  let bound = try? SocketAddress(ipAddress: String(cString: address), port: Int(raw.source_port)) else {
                return nil
            }
            sourceAddress = bound
        } else if raw.source_port > 0 {
            // A port alone binds the wildcard address (not Tornado's loopback surprise).
            guard raw.source_port <= 65535 else { return nil }
            sourceAddress = try? SocketAddress(ipAddress: "0.0.0.0", port: Int(raw.source_port))
        }
        if size >= MemoryLayout.offset(of: \wharf_connect_options.tls)! + MemoryLayout<UnsafeRawPointer>.size,
           let tlsOptions = raw.tls {
            guard let tls = ClientTLS(tlsOptions) else { return nil }
            self.tls = tls
        }
    }

    /// Plain options with TLS from `wharf client --tls`; nil if the CA file is unusable.
    public static func withTLS(verify: Bool, caFile: String?, serverName: String?) -> ConnectOptions? {
        let key = ClientTLS.Key(noVerify: !verify, caFile: caFile, alpn: nil, certificateFile: nil, keyFile: nil)
        guard let tls = ClientTLS(key, serverName: serverName) else { return nil }
        var options = ConnectOptions()
        options.tls = tls
        return options
    }
}

/// Opens outgoing streams (Tornado's TCPClient): a ClientBootstrap on the origin's loop,
/// with the same stream handler accepted connections get. The owner hears the outcome
/// exactly once: `streamOpened` (connected, and the TLS handshake done), or
/// `streamAbandoned` / `connectFailed` with the reason.
enum UpstreamConnector {
    static func connect(on loop: LoopContext, host: String, port: Int, options: ConnectOptions,
                        streamOptions: StreamOptions, owner: any StreamOwner,
                        connectFailed: @escaping (StreamError) -> Void) {
        let receiveAllocator = StreamChannelOptions.receiveAllocator(chunkSize: options.readChunkSize, fixed: false)
        let noDelay = options.noDelay
        let keepalive = options.keepalive ?? streamOptions.keepalive
        let tls = options.tls
        let ownerTransfer = UnsafeTransfer(owner)
        // One deadline covers resolution, connecting and the TLS handshake.
        let deadline = loop.eventLoop.now + options.timeout
        var bootstrap = ClientBootstrap(group: loop.eventLoop)
            .connectTimeout(options.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try StreamChannelOptions.apply(to: channel, noDelay: noDelay, keepalive: keepalive,
                                                   receiveAllocator: receiveAllocator)
                    var handlerOptions = streamOptions
                    handlerOptions.timeouts.handshake = max(.milliseconds(1), deadline - channel.eventLoop.now)
                    let handler = IOStreamHandler(loop: loop, options: handlerOptions, streamID: loop.nextStreamID(),
                                                  isClient: true, awaiting: tls == nil ? [] : .tlsHandshake,
                                                  owner: ownerTransfer.value)
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
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return .refused
            case EHOSTUNREACH, ENETUNREACH: return .unreachable
            case ETIMEDOUT: return .timedOut
            default: return .io
            }
        }
        if error is SocketAddressError { return .unresolved }
        if let error = error as? EventLoopError, case .shutdown = error { return .shuttingDown }
        return .io
    }
}
