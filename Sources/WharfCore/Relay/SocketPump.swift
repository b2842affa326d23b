import CWharfLinux
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A thread with its own epoll that moves bytes between relayed sockets, one per event loop.
///
/// Through NIO, each relayed message costs two channel reads and two channel writes: the
/// pipeline, pending-write bookkeeping and reference counting. In a proxy that is most of
/// the user-space time per round trip. Here a message costs one `read` into a reused buffer
/// and one `write` to the partner, nothing else, and an idle pair holds no buffer at all.
///
/// Everything the pump owns (pairs, their sockets) is touched only on its thread. The event
/// loop talks to it through `send`, and hears back through `EventLoop.execute`.
final class SocketPump: @unchecked Sendable {
    private static let scratchSize = 64 * 1024
    private static let maxEvents = 256
    /// The epoll token of the wake-up eventfd; pair tokens are `PumpedPair.token(side:)`,
    /// preamble tokens `PumpPreamble.token`, listener tokens `PumpListeners.tag | slot`.
    private static let wakeToken = UInt64.max
    /// Timer checks walk every pair, so they run at most this often.
    private static let minimumCheckInterval: Int64 = 10_000_000

    private let epollFD: CInt
    private let wakeFD: CInt
    private let lock = NIOLock()
    private var queued: [Command] = []
    private var stopRequested = false
    /// While above zero, commands queue without waking the pump (`holdWakeUps`).
    private var wakeUpHolds = 0
    private var thread: pthread_t?
    private let name: String

    // Pump thread only.
    private var pairs = TokenSlots<PumpedPair>()
    private var listeners = PumpListeners()
    private var preambles = PumpPreambles()
    private var slotsToFree: [Int] = []
    private var anotherTurn: [PumpedPair] = []
    private var nextCheck = Int64.max
    private var now: Int64 = 0
    /// What the loop is to hear from this turn (pairs connected or ended), sent as one task
    /// when the turn ends: one wake-up of the loop however many pairs it concerns.
    private var outbox: [() -> Void] = []
    private let loop: any EventLoop
    private let scheduling: PumpScheduling

    /// Fails (nil) only if the kernel refuses an epoll or eventfd descriptor.
    /// `loop`: the event loop whose relays this pump moves, and which hears back from it.
    init?(name: String, loop: any EventLoop, scheduling: PumpScheduling = .normal) {
        let epollFD = epoll_create1(CInt(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { return nil }
        let wakeFD = eventfd(0, CInt(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            close(epollFD)
            return nil
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeToken
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            close(epollFD)
            close(wakeFD)
            return nil
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        self.name = name
        self.loop = loop
        self.scheduling = scheduling
    }

    deinit {
        close(epollFD)
        close(wakeFD)
    }

    func start() -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let pump = Unmanaged<SocketPump>.fromOpaque(context!).takeRetainedValue()
            pump.run()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<SocketPump>.fromOpaque(context).release()
            return false
        }
        self.thread = thread
        return true
    }

    /// Queues a command; the pump applies it on its thread.
    func send(_ command: Command) {
        let wakes = lock.withLock {
            queued.append(command)
            return queued.count == 1 && wakeUpHolds == 0
        }
        if wakes { wake() }
    }

    /// Until the matching `releaseWakeUps`, commands queue without waking the pump: a loop
    /// that opens many relays in one task wakes it once, not once per relay (on a shared CPU
    /// each wake-up can preempt the loop mid-batch).
    func holdWakeUps() {
        lock.withLock { wakeUpHolds += 1 }
    }

    func releaseWakeUps() {
        let wakes = lock.withLock {
            wakeUpHolds -= 1
            return wakeUpHolds == 0 && !queued.isEmpty
        }
        if wakes { wake() }
    }

    /// Runs `body` with wake-ups held: whatever it sends wakes the pump once, at the end.
    func holdingWakeUps(_ body: () -> Void) {
        holdWakeUps()
        body()
        releaseWakeUps()
    }

    /// Stops the thread and waits for it. Pairs still open are closed: call this after the
    /// gateway has ended every relay.
    func stop() {
        lock.withLock { stopRequested = true }
        wake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: The pump thread

    private func run() {
        cwharf_name_current_thread(name)
        if !scheduling.applyToCurrentThread() {
            PumpLog.logger.warning("cannot set the relay pump's scheduling", metadata: ["policy": "\(scheduling)"])
        }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Self.maxEvents)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.scratchSize, alignment: 64)
        defer {
            events.deallocate()
            scratch.deallocate()
            endReportingTurn()
            // Only reached once every relay has ended; anything left has no loop to report to.
            for case let pair? in pairs.elements where !pair.finished {
                pair.end(.shuttingDown).openDescriptors.forEach { _ = close($0) }
            }
            for preamble in preambles.all { close(preamble.fd) }
        }
        while true {
            let count = epoll_wait(epollFD, events, CInt(Self.maxEvents), waitTimeout())
            now = Self.monotonicNanos()
            if count < 0, errno != EINTR {
                PumpLog.logger.error("epoll_wait failed", metadata: ["errno": "\(errno)"])
                return
            }
            var woken = false
            for index in 0..<max(0, Int(count)) {
                let token = events[index].data.u64
                if token >= PumpPreambles.tag { // the wake-up, a listener or a preamble: one test for pairs
                    if token == Self.wakeToken {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                        woken = true
                    } else if token >= PumpListeners.tag {
                        if let listener = listeners.listener(token: token), !listener.acceptQueued(now: now) {
                            updateWatch(listener)
                        }
                    } else if let preamble = preambles.preamble(token: token) {
                        preamble.note(events[index].events)
                        step(preamble, scratch: scratch)
                    }
                    continue
                }
                // An ended pair's sockets may still report until the loop closes them.
                guard let pair = pairs[PumpedPair.slot(of: token)], pair.generation == PumpedPair.generation(of: token),
                      !pair.finished else { continue }
                pair.noteEvents(events[index].events, side: Int(token & 1))
                switch pair.phase {
                case .relaying: service(pair, scratch: scratch)
                case .connecting: checkConnect(pair, clientEvent: token & 1 == 0)
                case .awaitingClient: break // readiness is noted for when the client joins
                }
            }
            serviceAnotherTurn(scratch: scratch)
            // Commands always come with a wake-up, so the lock is taken only then.
            if woken, !applyCommands(scratch: scratch) { return }
            if now >= nextCheck { checkTimers() }
            // Most turns only relay: one test, and the rest out of line.
            if !outbox.isEmpty { endReportingTurn() }
        }
    }

    /// The turn reported something. The ended pairs' slots become free (no event of this
    /// turn can name them any more), and the reports go to the loop as one task. The relays
    /// they reach may send commands back; those wake the pump once, after the last report.
    @inline(never)
    private func endReportingTurn() {
        pairs.reuse(slotsToFree)
        slotsToFree.removeAll(keepingCapacity: true)
        guard !outbox.isEmpty else { return }
        let reports = UnsafeTransfer(outbox)
        outbox = []
        loop.execute { [self] in
            holdingWakeUps { for report in reports.value { report() } }
        }
    }

    private func service(_ pair: PumpedPair, scratch: UnsafeMutableRawBufferPointer) {
        if let outcome = pair.service(scratch: scratch, now: now) {
            report(outcome, for: pair)
        } else if pair.needsAnotherTurn {
            anotherTurn.append(pair)
        }
    }

    private func serviceAnotherTurn(scratch: UnsafeMutableRawBufferPointer) {
        guard !anotherTurn.isEmpty else { return }
        let waiting = anotherTurn
        anotherTurn.removeAll(keepingCapacity: true)
        for pair in waiting { service(pair, scratch: scratch) }
    }

    /// Returns false once the pump is asked to stop.
    private func applyCommands(scratch: UnsafeMutableRawBufferPointer) -> Bool {
        let (commands, stopping) = lock.withLock {
            defer { queued = [] }
            return (queued, stopRequested)
        }
        for command in commands {
            switch command {
            case let .add(pair):
                add(pair)
                service(pair, scratch: scratch)
            case let .connect(pair):
                add(pair)
                if case let .connecting(deadline) = pair.phase { nextCheck = min(nextCheck, deadline) }
                pair.startWatchingClient(epollFD: epollFD)
            case let .attachClient(pair, client):
                guard !pair.finished else {
                    _ = close(client.fd) // the relay ended (shutdown) before the client joined
                    continue
                }
                pair.attachClient(client)
                pair.lastActivity = now
                guard watch(pair, side: 0) else { continue }
                schedule(pair)
                service(pair, scratch: scratch)
            case let .close(pair, side, abort):
                guard !pair.finished else { continue }
                pair.beginClosing(side: side, abort: abort, now: now)
                nextCheck = min(nextCheck, now + pair.closeLingerNanos)
                service(pair, scratch: scratch)
            case let .end(pair, reason):
                guard !pair.finished else { continue }
                report(pair.end(reason), for: pair)
            case let .setNoDelay(pair, side, enabled):
                guard !pair.finished else { continue }
                Descriptor.setSocketOption(side == 0 ? pair.a.fd : pair.b.fd, CInt(IPPROTO_TCP), TCP_NODELAY,
                                           enabled ? 1 : 0)
            case let .preamble(preamble):
                preambles.add(preamble)
                guard preamble.watch(epollFD: epollFD) else {
                    finish(preamble, .io)
                    continue
                }
                step(preamble, scratch: scratch)
            case let .cancelPreamble(preamble):
                guard preamble.slot >= 0 else { continue } // finished: the loop closes it
                preambles.remove(preamble)
                close(preamble.fd)
            case let .listen(listener):
                listeners.add(listener)
                updateWatch(listener)
            case let .setAccepting(listener, accepting):
                guard listener.slot >= 0 else { continue }
                listener.wanted = accepting
                updateWatch(listener)
            case let .unlisten(listener, done):
                if listener.slot >= 0 {
                    listener.wanted = false
                    updateWatch(listener)
                    listeners.remove(listener)
                }
                done()
            }
        }
        return !stopping
    }

    private func add(_ pair: PumpedPair) {
        (pair.slot, pair.generation) = pairs.insert(pair)
        pair.lastActivity = now
        // A connecting pair has no client socket yet (-1): side a is watched when it joins.
        guard pair.a.fd < 0 || watch(pair, side: 0), watch(pair, side: 1) else { return }
        if pair.phase == .relaying { schedule(pair) }
    }

    /// Registers one side edge-triggered; on failure the pair ends (false).
    private func watch(_ pair: PumpedPair, side: Int) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = pair.token(side: side)
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, side == 0 ? pair.a.fd : pair.b.fd, &event) == 0 else {
            PumpLog.logger.error("cannot watch a relayed socket", metadata: ["errno": "\(errno)"])
            report(pair.end(.io), for: pair)
            return false
        }
        return true
    }

    /// A relaying pair's idle limit, lifetime and upstream keepalive join the timer checks.
    private func schedule(_ pair: PumpedPair) {
        if pair.idleTimeoutNanos > 0 { nextCheck = min(nextCheck, now + pair.idleTimeoutNanos) }
        if let end = pair.lifetimeDeadline { nextCheck = min(nextCheck, end) }
        if let due = pair.scheduleKeepalive(now: now) { nextCheck = min(nextCheck, due) }
    }

    /// An event on a connecting upstream: connected (the loop hands the client over) or
    /// failed; or on its watched client, which reset: the upstream is not wanted any more.
    private func checkConnect(_ pair: PumpedPair, clientEvent: Bool) {
        if clientEvent {
            var outcome = pair.end(.closed)
            outcome.clientLeft = true
            return report(outcome, for: pair)
        }
        switch pair.connectOutcome() {
        case nil: break
        case .success:
            pair.stopWatchingClient(unwatch: unwatch)
            let owner = pair.owner
            outbox.append { owner.pumpConnected() }
        case let .failure(reason):
            report(pair.end(reason), for: pair)
        }
    }

    /// Takes a preamble as far as the socket lets it; once it ends, the loop hears how.
    private func step(_ preamble: PumpPreamble, scratch: UnsafeMutableRawBufferPointer) {
        switch preamble.step(scratch: scratch) {
        case .waiting: break // edge-triggered on both: the next edge resumes it
        case .done: finish(preamble, nil)
        case let .failed(reason): finish(preamble, reason)
        }
    }

    /// A finished preamble's socket leaves the pump's epoll for its stream; a failed one's
    /// is closed (which unwatches it).
    private func finish(_ preamble: PumpPreamble, _ failure: StreamError?) {
        preambles.remove(preamble)
        if failure == nil { unwatch(preamble.fd) } else { close(preamble.fd) }
        let owner = preamble.owner
        outbox.append { owner.pumpPreambleFinished(preamble, failure) }
    }

    /// Watches a listener or stops, as its gate and its last accept say. A paused one comes
    /// back in the timer checks.
    private func updateWatch(_ listener: PumpListener) {
        if let due = listener.updateWatch(epollFD: epollFD, now: now) { nextCheck = min(nextCheck, due) }
    }

    /// Lifetimes, idle limits and close lingers, upstream keepalives to set; listeners paused
    /// after a failed accept.
    /// Pairs are walked only when the earliest deadline is due.
    private func checkTimers() {
        var earliest = Int64.max
        for listener in listeners.paused {
            if let due = listener.updateWatch(epollFD: epollFD, now: now) {
                earliest = min(earliest, max(due, now + Self.minimumCheckInterval))
            }
        }
        for case let pair? in pairs.elements where !pair.finished {
            switch pair.checkTimers(now: now) {
            case let .ended(outcome): report(outcome, for: pair)
            case let .next(due): if let due { earliest = min(earliest, due) }
            }
        }
        nextCheck = earliest == .max ? .max : max(earliest, now + Self.minimumCheckInterval)
    }

    private func unwatch(_ fd: CInt) {
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
    }

    private func waitTimeout() -> CInt {
        if !anotherTurn.isEmpty { return 0 }
        guard nextCheck != .max else { return -1 }
        let nanos = max(0, nextCheck - Self.monotonicNanos())
        return CInt(min(nanos / 1_000_000 + 1, Int64(CInt.max)))
    }

    /// The pair is over: its slot is reused after this turn (events for it may still be in
    /// the batch), and its relay hears of it on its event loop when the turn ends. Every
    /// report goes through the outbox, so a slot to free always comes with one.
    private func report(_ outcome: PumpOutcome, for pair: PumpedPair) {
        pair.stopWatchingClient(unwatch: unwatch)
        if pair.slot >= 0 {
            pairs.vacate(pair.slot)
            slotsToFree.append(pair.slot)
            pair.slot = -1
        }
        let owner = pair.owner
        outbox.append { owner.pumpFinished(outcome) }
    }

    private static func monotonicNanos() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

enum PumpLog {
    static let logger = Logger(label: "wharf.relay")
}
