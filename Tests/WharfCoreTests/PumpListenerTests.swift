import Dispatch
import Foundation
import NIOCore
import NIOPosix
import Testing
import WharfTestSupport
@testable import WharfCore

/// A relay pump accepting on a listening socket (`PumpListener`), below the gateway: it
/// accepts only while its gate is open, hands every socket on with its peer, stops for good
/// when told, and after a failed accept pauses instead of spinning.
@Suite struct PumpListenerTests {
    /// What the pump handed over, from its thread.
    final class Deliveries: @unchecked Sendable {
        private let lock = NSLock()
        private var sockets: [AcceptedSocket] = []
        private var failures: [CInt] = []

        func accepted(_ batch: [AcceptedSocket]) { lock.withLock { sockets += batch } }
        func failed(_ code: CInt) { lock.withLock { failures.append(code) } }
        var accepted: [AcceptedSocket] { lock.withLock { sockets } }
        var failureCount: Int { lock.withLock { failures.count } }
        var firstFailure: CInt? { lock.withLock { failures.first } }

        func waitFor(_ count: Int, seconds: TimeInterval = 5) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while accepted.count < count, Date() < deadline { usleep(2_000) }
            return accepted.count >= count
        }

        deinit { sockets.forEach { close($0.fd) } }
    }

    private func startPump() throws -> SocketPump {
        guard let pump = SocketPump(name: "test-accept", loop: MultiThreadedEventLoopGroup.singleton.next()),
              pump.start() else { throw TestError.failed("no pump") }
        return pump
    }

    private func unlisten(_ listener: PumpListener, on pump: SocketPump) -> Bool {
        let done = DispatchSemaphore(value: 0)
        pump.send(.unlisten(listener, done: { done.signal() }))
        return done.wait(timeout: .now() + 5) == .success
    }

    /// Waits out `seconds` to show that nothing arrives: an absence has no event to await.
    private func quietly(_ seconds: TimeInterval) { usleep(UInt32(seconds * 1_000_000)) }

    /// A running pump and a loopback listening socket (a non-blocking copy for the pump).
    final class AcceptRig {
        let pump: SocketPump
        let listening: TestListener
        let fd: CInt
        let got = Deliveries()
        let listener: PumpListener

        init(pump: SocketPump, accepting: Bool) throws {
            self.pump = pump
            listening = try TestListener()
            fd = dup(listening.fd)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            listener = PumpListener(fd: fd, accepting: accepting, accepted: got.accepted, failed: got.failed)
        }

        deinit {
            pump.stop()
            close(fd)
        }
    }

    @Test func heldWakeUpsDelayCommandsUntilReleased() throws {
        let rig = try AcceptRig(pump: try startPump(), accepting: true)
        let client = try TestSocket(port: rig.listening.port)
        rig.pump.holdWakeUps()
        rig.pump.send(.listen(rig.listener))
        quietly(0.2)
        #expect(rig.got.accepted.isEmpty, "nothing woke the pump, so the held command waits")
        rig.pump.releaseWakeUps()
        #expect(rig.got.waitFor(1), "released: the pump woke, listened and accepted")
        #expect(rig.got.accepted.first?.remote?.port == client.localPort)
        #expect(unlisten(rig.listener, on: rig.pump))
    }

    @Test func itAcceptsWhileTheGateIsOpenAndStopsForGood() throws {
        let rig = try AcceptRig(pump: try startPump(), accepting: false)
        let (pump, listening, got, listener) = (rig.pump, rig.listening, rig.got, rig.listener)
        pump.send(.listen(listener))

        let first = try TestSocket(port: listening.port)
        quietly(0.2)
        #expect(got.accepted.isEmpty, "the gate is closed: the connection waits in the backlog")
        pump.send(.setAccepting(listener, true))
        #expect(got.waitFor(1))
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(first.fd, $0, &length) }
        }
        #expect(got.accepted.first?.remote?.port == Int(UInt16(bigEndian: local.sin_port)), "the peer is the client")

        let more = try (0..<5).map { _ in try TestSocket(port: listening.port) }
        #expect(got.waitFor(6), "a burst is accepted: \(got.accepted.count) of 6")
        let flags = fcntl(got.accepted[0].fd, F_GETFL)
        #expect(flags & O_NONBLOCK != 0 && fcntl(got.accepted[0].fd, F_GETFD) & FD_CLOEXEC != 0)

        #expect(unlisten(listener, on: pump))
        let late = try TestSocket(port: listening.port)
        quietly(0.2)
        #expect(got.accepted.count == 6, "after unlisten nothing more is accepted")
        #expect(got.failureCount == 0)
        _ = (more, late)
    }

    /// A `max_connections` share as the listener sees it, counting like `ConnectionLimit`.
    final class Slots: AcceptSlots, @unchecked Sendable {
        private let lock = NSLock()
        private var taken = 0
        private var pauses = 0
        let share: Int
        init(share: Int) { self.share = share }
        func reserve() -> Bool { lock.withLock { taken < share ? { taken += 1; return true }() : false } }
        func unreserve() { lock.withLock { taken -= 1 } }
        func pumpPaused() { lock.withLock { pauses += 1 } }
        func free() { lock.withLock { taken -= 1 } }
        var count: (taken: Int, pauses: Int) { lock.withLock { (taken, pauses) } }
    }

    /// With a share, the listener takes a slot before each accept: at the share it stops
    /// (unwatched, the gate told) with the rest left in the backlog, however many wait, and
    /// a slot it took for nothing (the backlog empty) goes back. Under load the pump once
    /// accepted past `max_connections` because the loop's pause came after the accept.
    @Test func atTheShareAcceptingStopsBeforeTheAccept() throws {
        let listening = try TestListener()
        let fd = dup(listening.fd)
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let got = Deliveries()
        let slots = Slots(share: 2)
        let listener = PumpListener(fd: fd, accepting: true, slots: slots, accepted: got.accepted, failed: got.failed)
        let clients = try (0..<3).map { _ in try TestSocket(port: listening.port) }
        #expect(!listener.acceptQueued(now: 0), "the pump must update its watch")
        #expect(got.accepted.count == 2 && got.accepted.allSatisfy(\.reserved))
        #expect(!listener.wanted, "no longer watched")
        #expect(slots.count == (2, 1), "two slots taken, the gate told once")
        slots.free() // a connection ended; the gate turns accepting back on
        listener.wanted = true
        #expect(!listener.acceptQueued(now: 0))
        #expect(got.accepted.count == 3, "the third, left waiting in the backlog, now comes")
        #expect(slots.count == (2, 2), "and the share is reached again")
        slots.free()
        slots.free()
        listener.wanted = true
        #expect(listener.acceptQueued(now: 0), "below the share with the backlog empty: nothing to update")
        #expect(slots.count == (0, 2), "the slot taken for a connection that was not there went back")
        _ = clients
    }

    @Test func aFailingAcceptPausesTheListenerAndTriesAgain() throws {
        let pump = try startPump()
        defer { pump.stop() }
        // Bound but never listening: epoll reports it hung up and accept fails (EINVAL) for
        // as long as it is watched, like a listener out of descriptors.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let got = Deliveries()
        let listener = PumpListener(fd: fd, accepting: true, accepted: got.accepted, failed: got.failed)
        pump.send(.listen(listener))
        quietly(1.0)
        let failures = got.failureCount
        #expect(got.firstFailure == EINVAL)
        #expect(failures >= 3, "it tries again after each pause: \(failures) tries in a second")
        #expect(failures <= 12, "one try per \(AcceptBackoff.pause) pause, not a spin: \(failures) tries in a second")
        #expect(unlisten(listener, on: pump))
    }
}

/// The pump thread runs under the scheduling policy it was given; `auto` batches only when
/// the loop's work is hand-offs to the pump.
@Suite struct PumpSchedulingTests {
    @Test func autoBatchesOnlyWhenThePumpAcceptsForEveryListener() {
        #expect(PumpScheduling.auto.resolved(everyListenerPumped: true) == .batch)
        #expect(PumpScheduling.auto.resolved(everyListenerPumped: false) == .normal)
        #expect(PumpScheduling.batch.resolved(everyListenerPumped: false) == .batch, "an explicit choice stands")
        #expect(PumpScheduling.normal.resolved(everyListenerPumped: true) == .normal)
    }

    @Test(arguments: [PumpScheduling.batch, .normal])
    func thePumpThreadRunsUnderItsPolicy(_ scheduling: PumpScheduling) throws {
        let name = "sched-\(scheduling)" // within the 15 bytes a thread name keeps
        guard let pump = SocketPump(name: name, loop: MultiThreadedEventLoopGroup.singleton.next(),
                                    scheduling: scheduling), pump.start() else { throw TestError.failed("no pump") }
        defer { pump.stop() }
        let expected: ThreadPolicy = scheduling == .batch ? .batch : .other
        let deadline = Date().addingTimeInterval(5)
        while ThreadPolicy.of(threadsNamed: name) != [expected], Date() < deadline { usleep(2_000) }
        #expect(ThreadPolicy.of(threadsNamed: name) == [expected])
    }
}
