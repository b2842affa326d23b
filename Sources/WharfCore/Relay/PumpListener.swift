import CWharfLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connection a relay pump accepted: its socket (non-blocking, close-on-exec) and peer.
struct AcceptedSocket: @unchecked Sendable {
    let fd: CInt
    let remote: SocketAddress?
}

/// A listening socket a relay pump accepts on (see `PumpAcceptor`). The pump watches it
/// level-triggered while accepting is wanted; an accept that fails (out of descriptors, most
/// often) stops the watching for `AcceptBackoff.pause`, so a socket that stays readable
/// cannot spin the pump. Its mutable state belongs to the pump thread.
final class PumpListener: @unchecked Sendable {
    /// Accepts per readiness at most, so one busy listener cannot starve the relays.
    static let batch = 64

    let fd: CInt
    /// Hears each batch accepted, on the pump thread.
    private let accepted: ([AcceptedSocket]) -> Void
    /// Hears an accept's errno, on the pump thread.
    private let failed: (CInt) -> Void

    // Pump thread only.
    var slot = -1
    /// What the listener's `AcceptGate` says.
    var wanted: Bool
    /// After a failed accept: no watching before this (monotonic nanoseconds).
    var resumeAt: Int64 = 0
    var watched = false

    init(fd: CInt, accepting: Bool, accepted: @escaping ([AcceptedSocket]) -> Void,
         failed: @escaping (CInt) -> Void) {
        self.fd = fd
        self.wanted = accepting
        self.accepted = accepted
        self.failed = failed
    }

    /// Whether the pump should watch the socket now.
    func shouldWatch(now: Int64) -> Bool { wanted && now >= resumeAt }

    /// Accepts what the backlog holds (up to `batch`) and hands it on. On a failure other
    /// than a client that gave up, returns false: the pump pauses the listener.
    func acceptQueued(now: Int64) -> Bool {
        var sockets: [AcceptedSocket] = []
        var healthy = true
        while sockets.count < Self.batch {
            var storage = sockaddr_storage()
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let fd = cwharf_accept(self.fd, &storage, &length)
            if fd >= 0 {
                sockets.append(AcceptedSocket(fd: fd, remote: Self.address(storage)))
                continue
            }
            let code = errno
            if code == EINTR || code == ECONNABORTED { continue }
            if code != EAGAIN && code != EWOULDBLOCK {
                resumeAt = now + AcceptBackoff.pause.nanoseconds
                failed(code)
                healthy = false
            }
            break
        }
        if !sockets.isEmpty { accepted(sockets) }
        return healthy
    }

    private static func address(_ storage: sockaddr_storage) -> SocketAddress? {
        withUnsafeBytes(of: storage) { bytes in
            switch CInt(storage.ss_family) {
            case AF_INET: SocketAddress(bytes.load(as: sockaddr_in.self))
            case AF_INET6: SocketAddress(bytes.load(as: sockaddr_in6.self))
            default: nil
            }
        }
    }
}
