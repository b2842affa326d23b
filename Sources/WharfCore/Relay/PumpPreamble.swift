import CWharfLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The event loop's side of a preamble the pump reads: told, on its loop, how it ended.
protocol PumpPreambleOwner: AnyObject {
    func pumpPreambleFinished(_ preamble: PumpPreamble, _ failure: StreamError?)
}

/// What comes before the plugin sees a connection the relay pump accepted: a PROXY protocol
/// header, then a TLS handshake (`PumpTLSSession`), either or both, read and run by the pump
/// on the bare socket. While it runs, the pump owns the socket: a failed preamble's socket is
/// closed by the pump; a finished one is unwatched and goes back to the loop, whose stream
/// owns it from then on. The deadline is the stream's handshake deadline, kept on its loop,
/// which calls the preamble off (`SocketPump.Command.cancelPreamble`) when it passes.
final class PumpPreamble: @unchecked Sendable {
    enum Step: Equatable {
        case done
        /// The socket's next edge (in or out) resumes it.
        case waiting
        case failed(StreamError)
    }

    let fd: CInt
    /// The TLS handshake after the header, if the listener terminates TLS.
    let session: PumpTLSSession?
    let owner: any PumpPreambleOwner

    // Pump thread only, then (once reported) the loop's.
    private var awaitingProxyHeader: Bool
    /// The PROXY header, once read.
    private(set) var proxied: ProxyProtocolHeader?
    /// Why the header was refused, for the operator's log.
    private var proxyError: ProxyProtocolError?
    /// The peer's FIN (or an error) was reported: a header still incomplete never will be.
    private var peerClosed = false
    var slot = -1
    var generation: UInt64 = 0

    init(fd: CInt, proxyHeader: Bool, session: PumpTLSSession?, owner: any PumpPreambleOwner) {
        self.fd = fd
        self.awaitingProxyHeader = proxyHeader
        self.session = session
        self.owner = owner
    }

    /// Bits 32-60: the generation; 1-31: the slot; with `PumpPreambles.tag`.
    var token: UInt64 { PumpPreambles.tag | generation << 32 | UInt64(slot) << 1 }

    /// What went wrong, in detail, once `step` failed: the PROXY header's fault, or TLS's.
    var failureDetail: (any Error)? { proxyError ?? session?.failure }

    /// Registers the socket edge-triggered for both directions: a TLS handshake waits on
    /// either, as BoringSSL says.
    func watch(epollFD: CInt) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = token
        return epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0
    }

    /// Remembers what epoll reported: a FIN after part of a header comes as one edge, and
    /// peeking shows the same bytes again, not the end.
    func note(_ events: UInt32) {
        if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { peerClosed = true }
    }

    /// Takes the preamble as far as the socket lets it. `scratch`: room to look at the
    /// header in (a v2 header with its TLVs fits in 64 KiB).
    func step(scratch: UnsafeMutableRawBufferPointer) -> Step {
        if awaitingProxyHeader, let pending = readProxyHeader(scratch) { return pending }
        guard let session else { return .done }
        switch session.handshake() {
        case .done: return .done
        case .wantRead, .wantWrite: return .waiting
        case let .failed(reason): return .failed(reason)
        }
    }

    /// Looks at what has arrived without taking it (`MSG_PEEK`): once a whole header is
    /// there it is taken, exactly, and what follows stays for TLS or the plugin. Nil once
    /// the header is read.
    private func readProxyHeader(_ scratch: UnsafeMutableRawBufferPointer) -> Step? {
        let peeked = recv(fd, scratch.baseAddress, scratch.count, CInt(MSG_PEEK))
        if peeked == 0 { return refuse("connection ended inside the PROXY header") }
        if peeked < 0 {
            return errno == EAGAIN || errno == EINTR ? .waiting : .failed(StreamError(socketErrno: errno))
        }
        let bytes = ByteBuffer(bytes: UnsafeRawBufferPointer(start: scratch.baseAddress, count: peeked))
        do {
            guard let (header, length) = try ProxyProtocolDecoder.parse(bytes.readableBytesView) else {
                if peerClosed { return refuse("connection ended inside the PROXY header") }
                return peeked < scratch.count ? .waiting : refuse("PROXY header longer than \(scratch.count) bytes")
            }
            guard recv(fd, scratch.baseAddress, length, 0) == length else { return .failed(.io) }
            proxied = header
            awaitingProxyHeader = false
            return nil
        } catch {
            proxyError = error
            return .failed(.io)
        }
    }

    private func refuse(_ why: String) -> Step {
        proxyError = ProxyProtocolError(description: why)
        return .failed(.io)
    }
}

/// The preambles one pump reads, by slot. Pump thread only.
struct PumpPreambles {
    /// Marks a preamble's epoll token; pair tokens stay below it, listener tokens above.
    static let tag: UInt64 = 1 << 61
    private var slots = TokenSlots<PumpPreamble>()

    mutating func add(_ preamble: PumpPreamble) {
        (preamble.slot, preamble.generation) = slots.insert(preamble)
    }

    /// The slot is free at once: a removed preamble's socket is closed or unwatched first,
    /// and a later event naming it carries an older generation.
    mutating func remove(_ preamble: PumpPreamble) {
        guard preamble.slot >= 0 else { return }
        slots.remove(preamble.slot)
        preamble.slot = -1
    }

    func preamble(token: UInt64) -> PumpPreamble? {
        guard let preamble = slots[PumpedPair.slot(of: token & ~Self.tag)],
              preamble.generation == PumpedPair.generation(of: token & ~Self.tag) else { return nil }
        return preamble
    }

    var all: [PumpPreamble] { slots.elements.compactMap { $0 } }
}
