#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A `sockaddr_un` for a path, or for the abstract namespace when the name starts with `@`
/// (systemd's NOTIFY_SOCKET convention). Used where a Unix socket is bound or reached with
/// plain system calls: the control socket (both sides) and sd_notify.
public struct UnixSocketAddress {
    private var address = sockaddr_un()
    private let length: socklen_t

    /// nil if the name does not fit in `sun_path`.
    public init?(_ path: String) {
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
    }

    /// Calls `body` with the address as a `sockaddr` and its length (for bind, connect, sendto).
    public func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
