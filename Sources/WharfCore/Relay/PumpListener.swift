import CWharfLinux
import Logging
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
    /// Its `max_connections` slot was taken before the accept (`PumpListener.slots`).
    var reserved = false
}

/// A listener's `max_connections` share as a relay pump's listener sees it (queue mode):
/// a slot is taken before each accept, so the pump never accepts past the share. A class
/// (`ConnectionLimit`): its existential is a reference, so the accept loop's `if let` copies
/// a pointer, not an opaque box through value witnesses (~600 instructions a proxied
/// connection, by callgrind, with no limit configured at all).
protocol AcceptSlots: AnyObject, Sendable {
    /// Takes a slot; false at the share.
    func reserve() -> Bool
    /// Gives back a slot no connection came for.
    func unreserve()
    /// The pump stopped watching the listener at the share; the gate resumes it.
    func pumpPaused()
}

/// A listening socket a relay pump accepts on (see `PumpAcceptor`). The pump watches it
/// level-triggered while accepting is wanted; an accept that fails (out of descriptors, most
/// often) stops the watching for `AcceptBackoff.pause`, so a socket that stays readable
/// cannot spin the pump. With a `max_connections` share it takes a slot before each accept
/// and stops at the share (`AcceptSlots`). Its mutable state belongs to the pump thread.
final class PumpListener: @unchecked Sendable {
    /// Accepts per readiness at most, so one busy listener cannot starve the relays.
    static let batch = 64

    let fd: CInt
    /// Hears each batch accepted, on the pump thread.
    private let accepted: ([AcceptedSocket]) -> Void
    /// Hears an accept's errno, on the pump thread.
    private let failed: (CInt) -> Void
    /// The listener's share of `max_connections` in queue mode, if it has one.
    private let slots: (any AcceptSlots)?

    // Pump thread only.
    var slot = -1
    /// What the listener's `AcceptGate` says.
    var wanted: Bool
    /// After a failed accept: no watching before this (monotonic nanoseconds).
    var resumeAt: Int64 = 0
    var watched = false

    init(fd: CInt, accepting: Bool, slots: (any AcceptSlots)? = nil, accepted: @escaping ([AcceptedSocket]) -> Void,
         failed: @escaping (CInt) -> Void) {
        self.fd = fd
        self.wanted = accepting
        self.slots = slots
        self.accepted = accepted
        self.failed = failed
    }

    /// Registers the socket in the pump's epoll, or removes it, as the gate and the last
    /// accept say. Returns when to look again if accepting is wanted but paused.
    func updateWatch(epollFD: CInt, now: Int64) -> Int64? {
        let watch = wanted && now >= resumeAt
        if watch != watched {
            var event = epoll_event()
            // Exclusive: of the workers' pumps waiting on a shared socket, one is woken.
            event.events = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
            event.data.u64 = PumpListeners.tag | UInt64(slot)
            if epoll_ctl(epollFD, watch ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &event) == 0 {
                watched = watch
            } else {
                PumpLog.logger.error("cannot watch a listening socket", metadata: ["errno": "\(errno)"])
            }
        }
        return wanted && !watched ? max(resumeAt, now + 1) : nil
    }

    /// Accepts what the backlog holds (up to `batch`, and not past the `max_connections`
    /// share) and hands it on. Returns false when the pump must update its watch: a failure
    /// other than a client that gave up (a pause), or the share reached (no longer wanted).
    func acceptQueued(now: Int64) -> Bool {
        var sockets: [AcceptedSocket] = []
        var healthy = true
        while sockets.count < Self.batch {
            if let slots, !slots.reserve() {
                wanted = false
                slots.pumpPaused()
                healthy = false
                break
            }
            var storage = sockaddr_storage()
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let fd = cwharf_accept(self.fd, &storage, &length)
            if fd >= 0 {
                sockets.append(AcceptedSocket(fd: fd, remote: Self.address(storage), reserved: slots != nil))
                continue
            }
            let code = errno
            slots?.unreserve()
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

    /// No host name: NIO would otherwise format every peer with `inet_ntop` at once (about
    /// 1,000 instructions), and Wharf reads addresses from their bytes (`ipAddress`, the
    /// access log) only when something asks.
    private static func address(_ storage: sockaddr_storage) -> SocketAddress? {
        withUnsafeBytes(of: storage) { bytes in
            switch CInt(storage.ss_family) {
            case AF_INET: SocketAddress(bytes.load(as: sockaddr_in.self), host: "")
            case AF_INET6: SocketAddress(bytes.load(as: sockaddr_in6.self), host: "")
            default: nil
            }
        }
    }
}

/// The listeners one pump accepts for, by slot. Pump thread only.
struct PumpListeners {
    /// Marks a listener's epoll token (`tag | slot`); pair tokens never reach it.
    static let tag: UInt64 = 1 << 62
    private var slots: [PumpListener?] = []

    mutating func add(_ listener: PumpListener) {
        listener.slot = slots.firstIndex { $0 == nil } ?? slots.count
        if listener.slot == slots.count { slots.append(nil) }
        slots[listener.slot] = listener
    }

    mutating func remove(_ listener: PumpListener) {
        slots[listener.slot] = nil
        listener.slot = -1
    }

    /// The listener an epoll token carrying `tag` names, if it is still here.
    func listener(token: UInt64) -> PumpListener? {
        guard token != UInt64.max else { return nil }
        let slot = Int(token & ~Self.tag)
        return slot < slots.count ? slots[slot] : nil
    }

    /// Those that want to accept but are not watched (paused after a failed accept).
    var paused: [PumpListener] { slots.compactMap { $0 }.filter { $0.wanted && !$0.watched } }
}
