import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The socket settings every IOStream channel needs, accepted or outgoing: the handler
/// owns read demand (autoRead off), a peer's FIN is a half-close rather than a close, and
/// each readable event reads once, as Tornado does.
enum StreamChannelOptions {
    static func apply(to channel: any Channel, noDelay: Bool, keepalive: TCPKeepalive?,
                      receiveAllocator: any RecvByteBufferAllocator) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.autoRead, value: false)
        try options.setOption(.allowRemoteHalfClosure, value: true)
        try options.setOption(.maxMessagesPerRead, value: 1)
        try options.setOption(.recvAllocator, value: receiveAllocator)
        try options.setOption(.tcpOption(.tcp_nodelay), value: noDelay ? 1 : 0)
        if let keepalive {
            try options.setOption(.socketOption(.so_keepalive), value: 1)
            try options.setOption(tcpOption(TCP_KEEPIDLE), value: SocketOptionValue(keepalive.idleSeconds))
            try options.setOption(tcpOption(TCP_KEEPINTVL), value: SocketOptionValue(keepalive.intervalSeconds))
            try options.setOption(tcpOption(TCP_KEEPCNT), value: SocketOptionValue(keepalive.count))
        }
    }

    /// NIO names no constants for the keepalive timings; the raw options are the same call.
    private static func tcpOption(_ name: CInt) -> ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: name))
    }

    /// NIO keeps one receive buffer per channel, sized by its reads, for the channel's life.
    /// Fixed reads (Tornado's exact chunk boundaries) therefore pin `chunkSize` bytes to
    /// every connection; adaptive reads start at 2 KiB and grow up to `chunkSize` while the
    /// peer keeps them full, so idle connections stay small.
    static func receiveAllocator(chunkSize: Int, fixed: Bool) -> any RecvByteBufferAllocator {
        if fixed { return FixedSizeRecvByteBufferAllocator(capacity: chunkSize) }
        return AdaptiveRecvByteBufferAllocator(minimum: min(64, chunkSize), initial: min(2048, chunkSize),
                                               maximum: chunkSize)
    }
}
