import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A listening socket as the supervisor owns it: bound once, then inherited by every worker
/// process of every generation that serves it. Never re-bound on reload, so nothing queued in
/// its backlog is lost when workers come and go; closed only when no generation uses it.
///
/// Plain system calls rather than a NIO server channel: the supervisor must not accept on it
/// (its workers do), so it never joins an event loop here.
public final class ListeningSocket: @unchecked Sendable {
    /// The configured `address:port`: how a reload finds the socket an unchanged listener
    /// already has. Port 0 ("any free port") adds the listener's name (or position), so two
    /// such listeners get two sockets and a reload keeps each one's.
    public let key: String
    public let descriptor: CInt
    /// What was really bound (port 0 resolved).
    public let boundAddress: String
    public let boundPort: Int
    public private(set) var isClosed = false

    init(key: String, descriptor: CInt) {
        self.key = key
        self.descriptor = descriptor
        let local = try? SocketAddress(localAddressOf: descriptor)
        boundAddress = local?.ipAddress ?? ""
        boundPort = local?.port ?? 0
    }

    public static func key(of listener: ListenerConfig, index: Int) -> String {
        let endpoint = "\(listener.address):\(listener.port)"
        return listener.port != 0 ? endpoint : endpoint + "#" + (listener.name ?? "\(index)")
    }

    /// Binds one socket per worker slot for `listener`, all in one SO_REUSEPORT group: the
    /// kernel spreads new connections over the slots, and each socket has exactly one worker
    /// accepting from it at a time (two processes polling one socket would race for every
    /// connection). Unless the listener sets `reuse_port` (sharing the port with other
    /// programs on purpose), a port something else already listens on is an error, as it
    /// would be without SO_REUSEPORT. Errors name the listener the way a config error does.
    public static func bindGroup(_ listener: ListenerConfig, index: Int, count: Int) throws(GatewayError)
        -> [ListeningSocket] {
        if !listener.reusePort, listener.port != 0 {
            // A plain bind fails with EADDRINUSE where a bind with SO_REUSEPORT would join.
            let probe = try bind(listener, index: index, port: listener.port, reusePort: false)
            probe.close()
        }
        var group = [try bind(listener, index: index, port: listener.port, reusePort: true)]
        do throws(GatewayError) {
            while group.count < count { group.append(try join(group[0], for: listener, index: index)) }
        } catch {
            group.forEach { $0.close() }
            throw error
        }
        return group
    }

    /// One more socket in `first`'s group (a reload that raises `processes`).
    public static func join(_ first: ListeningSocket, for listener: ListenerConfig,
                            index: Int) throws(GatewayError) -> ListeningSocket {
        try bind(listener, index: index, port: first.boundPort, reusePort: true)
    }

    private static func bind(_ listener: ListenerConfig, index: Int, port: Int,
                             reusePort: Bool) throws(GatewayError) -> ListeningSocket {
        func failure(_ reason: String) -> GatewayError {
            GatewayError(kind: .listen, message: "\(listener.location): listeners[\(index)]: cannot listen on "
                + "\(listener.address):\(listener.port): \(reason)")
        }
        let socket = try bind(listener.address, port: port, reusePort: reusePort, key: key(of: listener, index: index),
                              failure: failure)
        guard socket.configure(for: listener) else {
            let reason = Self.errorText()
            socket.close()
            throw failure(reason)
        }
        return socket
    }

    /// A TCP socket bound to `host:port`, not yet listening.
    static func bind(_ host: String, port: Int, reusePort: Bool, key: String,
                     failure: (String) -> GatewayError) throws(GatewayError) -> ListeningSocket {
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw failure("cannot resolve the address")
        }
        let fd = socket(CInt(address.protocol.rawValue), CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure(Self.errorText()) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size)) }
        let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard bound == 0 else {
            let reason = Self.errorText()
            Glibc.close(fd)
            throw failure(reason)
        }
        return ListeningSocket(key: key, descriptor: fd)
    }

    /// The admin endpoint's socket (the supervisor serves it itself).
    static func bindAdmin(_ admin: AdminConfig) throws(GatewayError) -> ListeningSocket {
        func failure(_ reason: String) -> GatewayError {
            GatewayError(kind: .listen, message: "\(admin.location): admin: cannot listen on \(admin.endpoint): \(reason)")
        }
        let socket = try bind(admin.address, port: admin.port, reusePort: false, key: adminKey, failure: failure)
        guard listen(socket.descriptor, 64) == 0 else {
            let reason = Self.errorText()
            socket.close()
            throw failure(reason)
        }
        return socket
    }

    /// The admin socket's key when a binary upgrade hands it over.
    static let adminKey = "admin"

    /// Whether the socket is bound to `host:port`.
    static func isBound(_ descriptor: CInt, host: String, port: Int) -> Bool {
        guard let local = try? SocketAddress(localAddressOf: descriptor),
              let wanted = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return false }
        return local.ipAddress == wanted.ipAddress && (port == 0 || local.port == wanted.port)
    }

    /// Whether the socket is in a SO_REUSEPORT group (more can join it).
    public var reusesPort: Bool {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(descriptor, SOL_SOCKET, SO_REUSEPORT, &value, &length) == 0 && value != 0
    }

    /// Adopts an inherited listening socket (socket activation or a binary upgrade): made
    /// close-on-exec, otherwise used as it is.
    public static func adopt(descriptor: CInt, key: String) -> ListeningSocket {
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        return ListeningSocket(key: key, descriptor: descriptor)
    }

    /// Applies the listener's backlog and the socket options accepted sockets inherit (Linux
    /// copies TCP_NODELAY and keepalive to every accepted socket). Run again by each
    /// generation, so a reload that changes them takes effect for new connections.
    @discardableResult
    public func configure(for listener: ListenerConfig) -> Bool {
        for (option, value) in StreamChannelOptions.socketOptions(noDelay: listener.tcpNoDelay,
                                                                  keepalive: listener.streamOptions.keepalive) {
            var value = CInt(value)
            setsockopt(descriptor, CInt(option.level), option.name, &value,
                       socklen_t(MemoryLayout<CInt>.size))
        }
        if listener.streamOptions.keepalive == nil {
            var off: CInt = 0
            setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &off, socklen_t(MemoryLayout<CInt>.size))
        }
        return listen(descriptor, CInt(listener.backlog)) == 0
    }

    /// Whether `descriptor` is bound to what the listener's address resolves to (socket
    /// activation matches the sockets systemd passed to the configured listeners this way).
    public static func isBound(_ descriptor: CInt, to listener: ListenerConfig) -> Bool {
        isBound(descriptor, host: listener.address, port: listener.port) && listener.port != 0
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    static func errorText() -> String { String(cString: strerror(errno)).lowercased() }
}

extension SocketAddress {
    init(localAddressOf descriptor: CInt) throws {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
        switch CInt(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self.init(address, host: "")
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            self.init(address, host: "")
        default:
            throw IOError(errnoCode: EAFNOSUPPORT, reason: "getsockname")
        }
    }
}
