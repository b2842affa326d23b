import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Finding the connected socket under a NIO channel, so the pump can take it over.
///
/// NIO offers no way to detach a socket from its channel. What it does show is the
/// descriptor in the channel's description (`SocketChannel { BaseSocket { fd=12 }, …`).
/// That number is trusted only if `getsockname` and `getpeername` on it return the channel's
/// own addresses. If NIO changes its wording, the relay falls back to the channel relay; it
/// never touches the wrong descriptor.
enum SocketHandoff {
    static func descriptor(of channel: any Channel) -> CInt? {
        let text = String(describing: channel)
        guard text.hasPrefix("SocketChannel {"), let marker = text.range(of: "fd=") else { return nil }
        guard let fd = CInt(text[marker.upperBound...].prefix(while: \.isNumber)), fd >= 0,
              let local = channel.localAddress, let remote = channel.remoteAddress,
              address(of: fd, getsockname, equals: local), address(of: fd, getpeername, equals: remote)
        else { return nil }
        return fd
    }

    /// A close-on-exec duplicate the pump owns after NIO has closed its own descriptor.
    static func duplicate(_ fd: CInt) -> CInt? {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        return copy >= 0 ? copy : nil
    }

    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    private typealias AddressQuery = (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt

    private static func address(of fd: CInt, _ query: AddressQuery, equals expected: SocketAddress) -> Bool {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { query(fd, $0, &length) }
        }
        guard status == 0 else { return false }
        return expected.withSockAddr { pointer, size in
            size == Int(length) && memcmp(pointer, &storage, size) == 0
        }
    }
}
