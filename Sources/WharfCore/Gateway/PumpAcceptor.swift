import Dispatch
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serves a listener from a relay pump's thread, for a plugin that relays at once
/// (WHARF_PLUGIN_RELAYS_AT_ONCE): the pump accepts, and each connection opens on a loop as a
/// bare stream (`BareSocket`), which `connect_relay` hands back to the pump with no channel
/// ever built. The loops take turns and a stalled loop is passed by, as with a listening
/// channel (`StallAwareDispatch`). The gate, `max_connections` and the back-off after a
/// failed accept work as they do there; the gate belongs to the home loop.
final class PumpAcceptor: @unchecked Sendable {
    let gate: AcceptGate
    let home: any EventLoop
    private let pump: SocketPump
    private let fd: CInt
    private let loops: [PluginLoop]
    private let acceptor: ListenerAcceptor
    private let watch: LoopWatch
    private let backoff: AcceptBackoff
    /// The listener's address, unless it listens on a wildcard (then each socket is asked).
    private let local: SocketAddress?
    private var listener: PumpListener?
    /// The loop the next connection goes to. Pump thread only.
    private var nextLoop = 0

    /// Takes `fd` (a listening socket) over; it is closed by `stop`.
    init(fd: CInt, pump: SocketPump, home: PluginLoop, loops: [PluginLoop], acceptor: ListenerAcceptor,
         gate: AcceptGate, watch: LoopWatch) {
        self.fd = fd
        self.pump = pump
        self.home = home.loop.eventLoop
        self.loops = loops
        self.acceptor = acceptor
        self.gate = gate
        self.watch = watch
        backoff = acceptor.prepareForPump(gate: gate, home: home)
        let bound = try? SocketAddress(localAddressOf: fd)
        local = bound.flatMap { ["0.0.0.0", "::"].contains($0.ipAddress ?? "") ? nil : $0 }
    }

    /// Starts accepting, or waiting for the gate to open (`accepting` false).
    func start(accepting: Bool) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let backoff = UnsafeTransfer(self.backoff) // used on the home loop only
        let listener = PumpListener(fd: fd, accepting: accepting, slots: acceptor.pumpSlots,
                                    accepted: { [unowned self] in distribute($0) },
                                    failed: { [home] code in
                                        home.execute { backoff.value.failed(errno: code, pausing: true) }
                                    })
        self.listener = listener
        gate.attach { [pump] accepting in pump.send(.setAccepting(listener, accepting)) }
        pump.send(.listen(listener))
    }

    /// Stops accepting and closes the socket (connections in the backlog stay for the next
    /// generation's workers). Waits for the pump (two seconds at most, should its thread
    /// have died): call it off the loops.
    func stop() {
        if let listener {
            let unwatched = DispatchSemaphore(value: 0)
            pump.send(.unlisten(listener, done: { unwatched.signal() }))
            _ = unwatched.wait(timeout: .now() + 2)
            self.listener = nil
        }
        close(fd)
    }

    /// On the pump thread: each socket to the next loop that turns, one hop per loop.
    private func distribute(_ sockets: [AcceptedSocket]) {
        let acceptor = self.acceptor
        let local = self.local
        guard loops.count > 1 else {
            let loop = loops[0]
            loop.loop.eventLoop.execute { acceptor.adopt(sockets, local: local, on: loop) }
            return
        }
        var shares = [[AcceptedSocket]](repeating: [], count: loops.count)
        for socket in sockets {
            var index = nextLoop
            nextLoop = (nextLoop + 1) % loops.count
            if watch.isStalled(index), let healthy = watch.healthyIndex(after: index) { index = healthy }
            shares[index].append(socket)
        }
        for (loop, share) in zip(loops, shares) where !share.isEmpty {
            loop.loop.eventLoop.execute { acceptor.adopt(share, local: local, on: loop) }
        }
    }
}
