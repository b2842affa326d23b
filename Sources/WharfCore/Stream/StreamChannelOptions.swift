import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The settings every IOStream channel needs, accepted or outgoing: the handler owns read
/// demand (autoRead off), a peer's FIN is a half-close rather than a close, and each
/// readable event reads once, as Tornado does.
///
/// TCP_NODELAY and the keepalive options are socket options. Linux copies them from a
/// listening socket to every socket it accepts, so a listener sets them once
/// (`listenerSocketOptions`) and accepted channels pay no system call for them; outgoing
/// sockets set their own (`socketOptions`).
enum StreamChannelOptions {
    static func apply(to channel: any Channel, receiveAllocator: any RecvByteBufferAllocator) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.autoRead, value: false)
        try options.setOption(.allowRemoteHalfClosure, value: true)
        try options.setOption(.maxMessagesPerRead, value: 1)
        try options.setOption(.recvAllocator, value: receiveAllocator)
    }

    /// The socket options of `noDelay` and `keepalive`, as (option, value) pairs.
    static func socketOptions(noDelay: Bool, keepalive: TCPKeepalive?)
        -> [(ChannelOptions.Types.SocketOption, SocketOptionValue)] {
        var options = [(ChannelOptions.Types.SocketOption.tcpOption(.tcp_nodelay), SocketOptionValue(noDelay ? 1 : 0))]
        if let keepalive {
            options += [(.socketOption(.so_keepalive), 1),
                        (tcpOption(TCP_KEEPIDLE), SocketOptionValue(keepalive.idleSeconds)),
                        (tcpOption(TCP_KEEPINTVL), SocketOptionValue(keepalive.intervalSeconds)),
                        (tcpOption(TCP_KEEPCNT), SocketOptionValue(keepalive.count))]
        }
        return options
    }

    /// Sets the socket options on an outgoing channel. `nagleAlreadyOff`: the bootstrap
    /// set TCP_NODELAY already, so only turning it back on costs a call.
    static func applySocketOptions(to channel: any Channel, noDelay: Bool, keepalive: TCPKeepalive?,
                                   nagleAlreadyOff: Bool = false) throws {
        guard let options = channel.syncOptions else { return }
        for (option, value) in socketOptions(noDelay: noDelay, keepalive: keepalive)
        where !(nagleAlreadyOff && noDelay && option == .tcpOption(.tcp_nodelay)) {
            try options.setOption(option, value: value)
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
