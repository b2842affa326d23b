import CWharfLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An upstream socket the host opens itself, for a relay that needs no channel on that side
/// (`connect_relay`): a non-blocking socket, its options set once, and a connect begun.
///
/// On loopback, and often on a LAN, the handshake completes inside `connect` itself (the
/// kernel runs the peer's side in the same call), so a zero-timeout `poll` right after it
/// usually finds the socket connected, or refused: the pump then gets both sockets at once,
/// and no thread hop waits for the result. Otherwise the pump watches the connect.
///
/// TCP keepalive is not set here: the pump sets it once the pair has relayed for a while
/// (`armKeepalive`), so a short-lived connection never pays its four calls.
enum UpstreamSocket {
    enum Start: Equatable {
        case connected(CInt)
        /// The pump must watch for the outcome.
        case inProgress(CInt)
        case failed(StreamError)
    }

    static func connect(to address: SocketAddress, noDelay: Bool, source: SocketAddress?) -> Start {
        let fd = socket(CInt(address.protocol.rawValue), CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue)
                        | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failed(.io) }
        func fail(_ code: CInt) -> Start {
            close(fd)
            return .failed(StreamError(connectErrno: code))
        }
        // Set directly, not as NIO options: building that list cost ~900 instructions a
        // connection (0.7% of a proxied one). A new socket has Nagle on already.
        if noDelay { Descriptor.setSocketOption(fd, CInt(IPPROTO_TCP), TCP_NODELAY, 1) }
        if let source {
            let bound = source.withSockAddr { bind(fd, $0, socklen_t($1)) }
            if bound != 0 { return fail(errno) }
        }
        let status = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if status == 0 { return .connected(fd) }
        guard errno == EINPROGRESS else { return fail(errno) }
        var probe = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&probe, 1, 0) == 1 else { return .inProgress(fd) }
        // Writable with no error or hang-up is connected: asking SO_ERROR would add a call.
        if probe.revents & Int16(POLLERR | POLLHUP) == 0 { return .connected(fd) }
        let error = pendingError(fd)
        return error == 0 ? .connected(fd) : fail(error)
    }

    /// Turns TCP keepalive on for a connected socket, as if it had been on from the start,
    /// provided no probe would have been due yet. The idle time goes last: setting it on a
    /// socket that keeps alive re-arms the probe timer from the socket's last activity
    /// (`tcp_sock_set_keepidle_locked`), not from now, so the first probe comes exactly when
    /// it would have.
    static func armKeepalive(_ fd: CInt, _ keepalive: TCPKeepalive) {
        Descriptor.setSocketOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
        Descriptor.setSocketOption(fd, CInt(IPPROTO_TCP), TCP_KEEPINTVL, CInt(keepalive.intervalSeconds))
        Descriptor.setSocketOption(fd, CInt(IPPROTO_TCP), TCP_KEEPCNT, CInt(keepalive.count))
        Descriptor.setSocketOption(fd, CInt(IPPROTO_TCP), TCP_KEEPIDLE, CInt(keepalive.idleSeconds))
    }

    /// The connect's outcome once the socket reported writable or an error: 0 when connected.
    static func pendingError(_ fd: CInt) -> CInt {
        var error: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return errno }
        return error
    }
}
