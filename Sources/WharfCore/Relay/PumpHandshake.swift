import CWharfLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The event loop's side of a TLS handshake the pump runs: told, on its loop, how it ended.
protocol PumpHandshakeOwner: AnyObject {
    func pumpHandshakeFinished(_ handshake: PumpHandshake, _ failure: StreamError?)
}

/// A TLS handshake the relay pump runs on an accepted socket (`PumpTLSSession`), before the
/// stream opens on its loop. While it runs, the pump owns the socket: a failed handshake's
/// socket is closed by the pump; a finished one is unwatched and goes back to the loop, whose
/// stream owns it from then on. The handshake deadline is the stream's, kept on its loop,
/// which calls the handshake off (`SocketPump.Command.cancelHandshake`) when it passes.
final class PumpHandshake: @unchecked Sendable {
    let fd: CInt
    let session: PumpTLSSession
    let owner: any PumpHandshakeOwner

    // Pump thread only.
    var slot = -1
    var generation: UInt64 = 0

    init(fd: CInt, session: PumpTLSSession, owner: any PumpHandshakeOwner) {
        self.fd = fd
        self.session = session
        self.owner = owner
    }

    /// Bits 32-60: the generation; 1-31: the slot; with `PumpHandshakes.tag`.
    var token: UInt64 { PumpHandshakes.tag | generation << 32 | UInt64(slot) << 1 }

    /// Registers the socket edge-triggered for both directions: the handshake waits on
    /// either, as BoringSSL says.
    func watch(epollFD: CInt) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = token
        return epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0
    }
}

/// The handshakes one pump runs, by slot. Pump thread only.
struct PumpHandshakes {
    /// Marks a handshake's epoll token; pair tokens stay below it, listener tokens above.
    static let tag: UInt64 = 1 << 61
    private var slots = TokenSlots<PumpHandshake>()

    mutating func add(_ handshake: PumpHandshake) {
        (handshake.slot, handshake.generation) = slots.insert(handshake)
    }

    /// The slot is free at once: a removed handshake's socket is closed or unwatched first,
    /// and a later event naming it carries an older generation.
    mutating func remove(_ handshake: PumpHandshake) {
        guard handshake.slot >= 0 else { return }
        slots.remove(handshake.slot)
        handshake.slot = -1
    }

    func handshake(token: UInt64) -> PumpHandshake? {
        guard let handshake = slots[PumpedPair.slot(of: token & ~Self.tag)],
              handshake.generation == PumpedPair.generation(of: token & ~Self.tag) else { return nil }
        return handshake
    }

    var all: [PumpHandshake] { slots.elements.compactMap { $0 } }
}
