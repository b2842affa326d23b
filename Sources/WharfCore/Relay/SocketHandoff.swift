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
///
/// The description costs ~30,000 instructions a call; reading it back is a byte scan, not
/// Foundation's `range(of:)`, which added ~10,000 more. Reflection (`Mirror`) on the
/// channel's stored `socketDescription` was tried and cost more still. Sockets the pump
/// accepts (`BareSocket`) or connects itself (`UpstreamSocket`) need none of this; it is
/// left for `relay` between two channels and for `connect_relay` on a listener whose plugin
/// gave no hint.
enum SocketHandoff {
    static func descriptor(of channel: any Channel) -> CInt? {
        let text = String(describing: channel)
        guard text.hasPrefix("SocketChannel {"), let fd = number(after: text), fd >= 0,
              let local = channel.localAddress, let remote = channel.remoteAddress,
              address(of: fd, getsockname, equals: local), address(of: fd, getpeername, equals: remote)
        else { return nil }
        return fd
    }

    /// The digits after the first "fd=", scanned in the string's own bytes.
    private static func number(after text: String) -> CInt? {
        var text = text
        return text.withUTF8 { bytes -> CInt? in
            guard bytes.count > 3 else { return nil }
            var index = 0
            while index + 3 <= bytes.count, !(bytes[index] == 102 && bytes[index + 1] == 100 && bytes[index + 2] == 61) {
                index += 1
            }
            index += 3
            var value: CInt = 0
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]), value < CInt.max / 10 {
                value = value * 10 + CInt(bytes[index] - 48)
                digits += 1
                index += 1
            }
            return digits > 0 ? value : nil
        }
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
