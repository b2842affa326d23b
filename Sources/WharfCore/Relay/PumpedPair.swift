import CWharfLinux
import CWharfTLS
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a pumped relay ended: the relay's reason and each stream's close reason.
struct PumpOutcome {
    var reason: StreamError?
    var aReason: StreamError?
    var bReason: StreamError?
    var bytesAToB: UInt64
    var bytesBToA: UInt64
    /// Sockets still open, which the pump no longer serves (their events are dropped). The
    /// event loop closes them after the relay callback, so a plugin hears of the end before
    /// either peer does; the close also unregisters them from the pump's epoll.
    var openDescriptors: OpenDescriptors
    /// Ended while connecting because the watched client reset (`watchedClient`).
    var clientLeft = false
}

/// The event loop's side of a pumped pair: told, on its loop, when the upstream connect
/// the pump watched succeeded, and when the pair ended (or its connect failed).
protocol PumpPairOwner: AnyObject {
    var eventLoop: any EventLoop { get }
    func pumpConnected()
    func pumpFinished(_ outcome: PumpOutcome)
}

/// What the loop hands the pump with a client socket, once its upstream is connected.
struct ClientHandover {
    let fd: CInt
    var buffered: ByteBuffer?
    var inputEnded: Bool
    /// The client's TLS, if the pump terminated it (`PumpTLSSession`).
    var tls: PumpTLSSession?
    var meter: ByteMeter?
    /// The upstream's meter too: set on the pump's thread, where side b lives.
    var upstreamMeter: ByteMeter?
    var lifetimeDeadline: Int64?
}

/// Two relayed sockets and the bytes between them, owned by one `SocketPump` thread.
///
/// The sockets are registered edge-triggered, so readiness is remembered here: `readable`
/// until a read comes back short or with EAGAIN, `writable` until a write is partial. A short
/// read means the kernel buffer was emptied (TCP delivers all it has), so no second read
/// waiting for EAGAIN is needed, unless the peer's FIN has been seen (`peerClosed`), which
/// no later edge would announce again.
final class PumpedPair {
    /// A pair begins `relaying`, or, for `connect_relay`, with only its upstream socket,
    /// `connecting` until the pump sees the connect's outcome and then `awaitingClient`
    /// until the loop hands the client's socket over.
    enum Phase: Equatable {
        case connecting(deadline: Int64)
        case awaitingClient
        case relaying
    }

    struct Side {
        /// -1 until a client's socket is handed over (`awaitingClient`).
        var fd: CInt
        /// TLS the pump terminates on this side: records in, plain bytes out.
        var tls: PumpTLSSession?
        /// The stream's byte counters in the pump's own metrics region.
        var meter: ByteMeter?
        var readable = false
        var writable = true
        var peerClosed = false
        var outputShut = false
        var closed = false
        /// A read or write on it failed: the error was its peer's doing.
        var failed = false

        /// Readiness is only ever added here; reads and writes take it away.
        mutating func note(_ events: UInt32) {
            let errorOrHangUp = EPOLLHUP.rawValue | EPOLLERR.rawValue
            readable = readable || events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | errorOrHangUp) != 0
            writable = writable || events & (EPOLLOUT.rawValue | errorOrHangUp) != 0
            peerClosed = peerClosed || events & (EPOLLRDHUP.rawValue | errorOrHangUp) != 0
        }
    }

    /// One direction: bytes read from `source` waiting for `destination`, and its end.
    struct Flow {
        var pending = PendingBytes()
        var sourceEnded = false
        var bytes: UInt64 = 0
        var isDone: Bool { sourceEnded && pending.isEmpty }
    }

    /// Bytes moved per direction in one turn before the pair yields to others.
    static let readsPerTurn = 8
    /// A peer that reset gives EPIPE, not a process-killing SIGPIPE, whatever the
    /// process's signal setup.
    private static let noSignal = CInt(MSG_NOSIGNAL)

    var a: Side
    var b: Side
    var aToB = Flow()
    var bToA = Flow()
    /// 0: no idle limit.
    let idleTimeoutNanos: Int64
    let closeLingerNanos: Int64
    var lastActivity: Int64 = 0
    /// Set once the plugin closed a side: no more reads; pending bytes drain until then.
    var closingDeadline: Int64?
    /// The side the plugin closed, whose own close reason is its plugin's choice (none).
    var closedByPlugin: Int?
    var finished = false
    /// Index in the pump's table, and so part of its epoll tokens.
    var slot = -1
    /// Set as the pump adds the pair, and carried in its epoll tokens (`token(side:)`): an
    /// ended pair's sockets stay registered until the loop closes them (a close unregisters
    /// a socket with no other descriptor, and these have none, which saves two `epoll_ctl`
    /// calls a connection), so an event can still name a slot another pair has taken since.
    var generation: UInt64 = 0

    /// Bits 32-60: the generation; 1-31: the slot; 0: the side. Below `PumpPreambles.tag`.
    func token(side: Int) -> UInt64 { generation << 32 | UInt64(slot) << 1 | UInt64(side) }
    static let generationMask: UInt64 = (1 << 29) - 1
    static func slot(of token: UInt64) -> Int { Int(truncatingIfNeeded: (token & 0xFFFF_FFFF) >> 1) }
    static func generation(of token: UInt64) -> UInt64 { token >> 32 }
    /// Set when a turn ran out of budget with bytes still readable: edge-triggered epoll will
    /// not report them again, so the pump services the pair once more without waiting.
    var needsAnotherTurn = false
    /// The loop-side relay to report to. Only the pump thread reads it.
    let owner: any PumpPairOwner
    var phase = Phase.relaying

    /// While `connecting`: a duplicate of a bare client's socket (`BareSocket`), the pump's
    /// own, through which it watches for a reset, as a channel would, so a client that
    /// leaves calls the connect off. -1: none.
    var watchedClient: CInt = -1

    /// Side b is a stream's channel (`TLSBridge`): once it ends, so does the pair, as soon as
    /// what it sent has reached the client (as a relay whose plugin closed side b).
    var endsWithSideB = false

    /// When the pair must end whatever it is doing (the streams' max_lifetime_ms), on the
    /// monotonic clock; nil: no limit.
    var lifetimeDeadline: Int64?

    /// TCP keepalive for the upstream (side b) that the host opened itself, still to be set:
    /// the pump sets it once the pair has relayed for `keepaliveDelayNanos`. Most proxied
    /// connections are over by then, and a probe is never due that early (the idle time is
    /// a second at least), so setting it late changes nothing but the four calls saved.
    var upstreamKeepalive: TCPKeepalive?
    private(set) var keepaliveDue = Int64.max
    static let keepaliveDelayNanos: Int64 = 1_000_000_000

    init(fdA: CInt, fdB: CInt, owner: any PumpPairOwner, idleTimeoutNanos: Int64, closeLingerNanos: Int64) {
        a = Side(fd: fdA)
        b = Side(fd: fdB)
        self.owner = owner
        self.idleTimeoutNanos = idleTimeoutNanos
        self.closeLingerNanos = closeLingerNanos
    }

    /// A pair whose upstream (side b) is still connecting: writable only once connected.
    static func connecting(upstream fd: CInt, deadline: Int64, owner: any PumpPairOwner, idleTimeoutNanos: Int64,
                           closeLingerNanos: Int64) -> PumpedPair {
        let pair = PumpedPair(fdA: -1, fdB: fd, owner: owner, idleTimeoutNanos: idleTimeoutNanos,
                              closeLingerNanos: closeLingerNanos)
        pair.b.writable = false
        pair.phase = .connecting(deadline: deadline)
        return pair
    }

    /// The pump saw an event on the connecting socket: nil while still connecting, success
    /// once connected, or the reason the connect failed.
    func connectOutcome() -> Result<Void, StreamError>? {
        let error = UpstreamSocket.pendingError(b.fd)
        if error != 0 { return .failure(StreamError(connectErrno: error)) }
        guard b.writable else { return nil }
        phase = .awaitingClient
        return .success(())
    }

    /// The client's socket joins: what it had read goes after the preface already pending.
    func attachClient(_ client: ClientHandover) {
        a = Side(fd: client.fd)
        a.meter = client.meter
        if let tls = client.tls { terminateTLS(tls) }
        b.meter = client.upstreamMeter
        client.buffered?.withUnsafeReadableBytes { aToB.pending.append($0.baseAddress!, count: $0.count) }
        aToB.sourceEnded = client.inputEnded
        lifetimeDeadline = client.lifetimeDeadline
        phase = .relaying
    }

    /// Side a (a client whose handshake the pump ran) is relayed through `tls`.
    func terminateTLS(_ tls: PumpTLSSession) {
        a.tls = tls
        // The handshake may have read records the kernel will not announce again.
        a.readable = true
    }

    /// Relaying began at `now`: when the upstream's keepalive is due, if it has one to set.
    func scheduleKeepalive(now: Int64) -> Int64? {
        guard upstreamKeepalive != nil else { return nil }
        keepaliveDue = now + Self.keepaliveDelayNanos
        return keepaliveDue
    }

    /// Sets the upstream's keepalive if it is due; otherwise returns when it will be.
    func armKeepaliveIfDue(now: Int64) -> Int64? {
        guard let keepalive = upstreamKeepalive else { return nil }
        guard now >= keepaliveDue else { return keepaliveDue }
        upstreamKeepalive = nil
        if !b.closed { UpstreamSocket.armKeepalive(b.fd, keepalive) }
        return nil
    }

    func noteEvents(_ events: UInt32, side: Int) {
        if side == 0 { a.note(events) } else { b.note(events) }
    }

    /// Moves what can move now both ways. Returns how the pair ended, if it did.
    func service(scratch: UnsafeMutableRawBufferPointer, now: Int64) -> PumpOutcome? {
        guard !finished, phase == .relaying else { return nil }
        needsAnotherTurn = false
        if let failure = move(from: &a, to: &b, flow: &aToB, scratch: scratch, now: now)
            ?? move(from: &b, to: &a, flow: &bToA, scratch: scratch, now: now) {
            return end(failedWith: failure)
        }
        if endsWithSideB, bToA.sourceEnded, closingDeadline == nil { beginClosing(side: 1, abort: false, now: now) }
        if closingDeadline != nil {
            return aToB.pending.isEmpty && bToA.pending.isEmpty ? end(.closed) : nil
        }
        if aToB.isDone && bToA.isDone && a.outputShut && b.outputShut { return end(nil) }
        return nil
    }

    private func move(from source: inout Side, to destination: inout Side, flow: inout Flow,
                      scratch: UnsafeMutableRawBufferPointer, now: Int64) -> StreamError? {
        var reads = 0
        while true {
            if !flow.pending.isEmpty {
                if destination.closed {
                    flow.pending.release()
                } else {
                    guard destination.writable else { return nil }
                    let written = Self.transmit(destination, flow.pending.bytes, flow.pending.count)
                    if written < 0 {
                        if errno == EINTR { continue }
                        if errno == EAGAIN { destination.writable = false; return nil }
                        destination.failed = true
                        return StreamError(socketErrno: errno)
                    }
                    flow.pending.consume(written)
                    if !flow.pending.isEmpty { destination.writable = false; return nil }
                }
            }
            if flow.sourceEnded {
                if !destination.outputShut, !destination.closed {
                    destination.outputShut = true
                    destination.tls?.shutdown()
                    shutdown(destination.fd, CInt(SHUT_WR))
                }
                return nil
            }
            guard closingDeadline == nil, source.readable, !source.closed else { return nil }
            guard reads < Self.readsPerTurn else {
                needsAnotherTurn = true
                return nil
            }
            reads += 1
            let count = Self.receive(source, scratch)
            if count > 0 {
                flow.bytes &+= UInt64(count)
                source.meter?.received(count)
                destination.meter?.sent(count)
                lastActivity = now
                // (TLS hands over one record at a time: only EAGAIN says the socket is empty.)
                if count < scratch.count, !source.peerClosed, source.tls == nil { source.readable = false }
                var written = 0
                if destination.writable {
                    written = Self.transmit(destination, scratch.baseAddress, count)
                    if written < 0 {
                        guard errno == EAGAIN || errno == EINTR else {
                            destination.failed = true
                            return StreamError(socketErrno: errno)
                        }
                        written = 0
                    }
                    if written < count { destination.writable = false }
                }
                if written < count { flow.pending.append(scratch.baseAddress! + written, count: count - written) }
            } else if count == 0 {
                flow.sourceEnded = true
                source.readable = false
            } else if errno == EAGAIN {
                source.readable = false
                return nil
            } else if errno != EINTR {
                source.failed = true
                return StreamError(socketErrno: errno)
            }
        }
    }

    /// `read(2)`, or a TLS side's plain bytes: > 0 bytes, 0 at the end of input, -1 with
    /// errno (EAGAIN: nothing now).
    @inline(__always)
    private static func receive(_ side: Side, _ scratch: UnsafeMutableRawBufferPointer) -> Int {
        guard let tls = side.tls else { return read(side.fd, scratch.baseAddress, scratch.count) }
        return tlsResult(tls.read(into: scratch.baseAddress!, count: scratch.count))
    }

    /// `send(2)` without SIGPIPE, or a TLS side's records: bytes taken, or -1 with errno.
    /// Either way fewer than `count` means the socket is full.
    @inline(__always)
    private static func transmit(_ side: Side, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
        guard let tls = side.tls else { return send(side.fd, bytes, count, noSignal) }
        return transmit(tls, bytes!, count)
    }

    /// BoringSSL's partial writes return after each record (16 KiB), full socket or not, so
    /// it is asked again until the socket says EAGAIN: an edge-triggered socket that is not
    /// full would never report writable again.
    @inline(never)
    private static func transmit(_ tls: PumpTLSSession, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        var total = 0
        while total < count {
            let result = tls.write(bytes + total, count: count - total)
            guard result > 0 else { return total > 0 ? total : tlsResult(result) }
            total += result
        }
        return total
    }

    /// A TLS call's result as the socket call's would be. Waiting on either direction is
    /// EAGAIN (the socket's next edge, in or out, services the pair again); a broken record
    /// is EPROTO.
    @inline(never)
    private static func tlsResult(_ result: Int) -> Int {
        switch result {
        case 1...: return result
        case CWHARF_TLS_WANT_READ, CWHARF_TLS_WANT_WRITE: errno = EAGAIN
        case CWHARF_TLS_CLOSED: return 0
        case CWHARF_TLS_SOCKET_ERROR: break // errno is the socket's
        default: errno = EPROTO
        }
        return -1
    }

    /// The plugin closed one side (graceful: its pending bytes still go out) or aborted it
    /// (RST now). Either way the relay stops reading; the partner gets what is pending, then
    /// its close.
    func beginClosing(side: Int, abort: Bool, now: Int64) {
        guard !finished, closingDeadline == nil else { return }
        closedByPlugin = side
        closingDeadline = now + closeLingerNanos
        if abort {
            if side == 0 { Self.reset(&a); bToA.pending.release() } else { Self.reset(&b); aToB.pending.release() }
        }
    }

    /// Ends the pair: both sockets out of the pump's hands, the outcome for the loop.
    /// The sockets stay registered with the pump's epoll until the loop closes them (see
    /// `generation`).
    func end(_ reason: StreamError?) -> PumpOutcome {
        finished = true
        // A TLS client hears the end as close_notify, unless its socket failed or is reset.
        if let tls = a.tls, !a.closed, !a.failed, !a.outputShut, reason != .connectionReset { tls.shutdown() }
        // Written out: `[a, b].filter` built two arrays of `Side` for every ended pair.
        var open = OpenDescriptors()
        if !a.closed, a.fd >= 0 { open.append(a.fd) }
        if !b.closed, b.fd >= 0 { open.append(b.fd) }
        a.closed = true
        b.closed = true
        aToB.pending.release()
        bToA.pending.release()
        var outcome = PumpOutcome(reason: reason, aReason: reason, bReason: reason,
                                  bytesAToB: aToB.bytes, bytesBToA: bToA.bytes, openDescriptors: open)
        if let closer = closedByPlugin, reason == .closed || reason == nil {
            outcome.reason = .closed
            outcome.aReason = closer == 0 ? nil : .closed
            outcome.bReason = closer == 1 ? nil : .closed
        }
        return outcome
    }

    /// A read or write failed. A reset passes through as a reset, as in HAProxy: a FIN would
    /// let the partner take a cut-off stream for a whole one, and would leave a TIME_WAIT
    /// here. Out of line: in `service` itself it cost ~110 instructions a relayed round trip.
    @inline(never)
    private func end(failedWith failure: StreamError) -> PumpOutcome {
        // Written out: `[a, b].filter` built two arrays on every reset (~400 instructions).
        if failure == .connectionReset {
            if !a.failed { Self.resetOnClose(a) }
            if !b.failed { Self.resetOnClose(b) }
        }
        return end(failure)
    }

    /// Registers `watchedClient` (token side 0) asking for no events: only errors and
    /// hang-ups are reported then, i.e. a reset, not bytes or a half-close, which wait for
    /// the relay.
    func startWatchingClient(epollFD: CInt) {
        guard watchedClient >= 0 else { return }
        var event = epoll_event()
        event.events = 0
        event.data.u64 = token(side: 0)
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, watchedClient, &event) != 0 { stopWatchingClient(unwatch: { _ in }) }
    }

    /// Ends the watch and closes the pump's duplicate (once the connect has an outcome).
    func stopWatchingClient(unwatch: (CInt) -> Void) {
        guard watchedClient >= 0 else { return }
        unwatch(watchedClient)
        close(watchedClient)
        watchedClient = -1
    }

    /// SO_LINGER 0: close() sends RST and drops unsent data, as the plugin's abort asks.
    private static func reset(_ side: inout Side) {
        guard !side.closed else { return }
        resetOnClose(side)
        close(side.fd)
        side.closed = true
    }

    /// SO_LINGER 0 on a side still open: its close (by the loop, after the relay callback)
    /// sends RST. (A side whose peer reset it needs no call.)
    private static func resetOnClose(_ side: Side) {
        guard !side.closed, side.fd >= 0 else { return }
        Descriptor.resetOnClose(side.fd)
    }
}
