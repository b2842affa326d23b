import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WharfTestSupport
@testable import WharfCore

/// `connect_relay`'s pieces below the plugin API: the host's own upstream socket, and the
/// pump watching a connect, timing it out, and relaying once the client's socket joins.
@Suite struct PumpConnectTests {
    static func loopback(_ port: Int) -> SocketAddress { try! SocketAddress(ipAddress: "127.0.0.1", port: port) }

    @Test func aRefusedConnectFailsAtOnceOnLoopback() {
        let start = UpstreamSocket.connect(to: Self.loopback(LoopbackPort.unused()), noDelay: true,
                                           source: nil)
        #expect(start == .failed(.refused))
    }

    @Test func aLoopbackConnectCompletesInsideTheCall() throws {
        let listener = try TestListener()
        let start = UpstreamSocket.connect(to: Self.loopback(listener.port), noDelay: true, source: nil)
        guard case let .connected(fd) = start else {
            Issue.record("expected a completed connect, got \(start)")
            return
        }
        close(fd)
    }

    @Test func thePumpTimesOutAConnectThatHangs() throws {
        let rig = try PumpConnectRig()
        defer { rig.stop() }
        let hanging = try TestListener(backlog: 0)
        let fillers = (0..<2).map { _ in
            UpstreamSocket.connect(to: Self.loopback(hanging.port), noDelay: true, source: nil)
        }
        defer { fillers.forEach { if case let .connected(fd) = $0 { close(fd) } else if case let .inProgress(fd) = $0 { close(fd) } } }
        let start = UpstreamSocket.connect(to: Self.loopback(hanging.port), noDelay: true, source: nil)
        guard case let .inProgress(fd) = start else {
            Issue.record("a full accept queue should leave the connect pending, got \(start)")
            return
        }
        let began = Date()
        rig.connect(fd, timeout: .milliseconds(300))
        let outcome = try rig.waitForOutcome()
        #expect(outcome.reason == .timedOut)
        #expect(outcome.openDescriptors == [fd], "the socket comes back for the loop to close")
        #expect(Date().timeIntervalSince(began) >= 0.25)
        #expect(rig.connectedCount == 0)
    }

    @Test func aWatchedConnectReportsAndThenRelaysTheClient() throws {
        let rig = try PumpConnectRig()
        defer { rig.stop() }
        let upstream = try TestListener()
        let start = UpstreamSocket.connect(to: Self.loopback(upstream.port), noDelay: true, source: nil)
        guard case let .connected(fd) = start else {
            Issue.record("expected a completed connect, got \(start)")
            return
        }
        // Watched anyway: epoll reports an already connected socket writable at once.
        rig.connect(fd, timeout: .seconds(5), preface: Array("hello ".utf8))
        #expect(rig.waitUntilConnected())
        let upstreamPeer = try upstream.accept()
        // The client: one end of a socket pair, the test holding the other.
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        let client = TestSocket(adopting: ends[1], timeout: 5)
        rig.attachClient(ends[0], buffered: Array("world\n".utf8))
        #expect(try upstreamPeer.receiveString(count: 12) == "hello world\n", "preface, then the client's bytes")
        try upstreamPeer.send("back\n")
        #expect(try client.receiveString(count: 5) == "back\n")
        client.shutdownWrite()
        upstreamPeer.shutdownWrite()
        let outcome = try rig.waitForOutcome()
        #expect(outcome.reason == nil)
        #expect(outcome.bytesBToA == 5)
    }
}

extension PumpConnectTests {
    /// The upstream's keepalive is set by the pump once the pair has relayed a second, not at
    /// connect: a short-lived connection never pays for it, a long-lived one keeps alive.
    @Test func thePumpSetsTheUpstreamsKeepaliveOnceThePairHasRelayedASecond() throws {
        let rig = try PumpConnectRig()
        defer { rig.stop() }
        let upstream = try TestListener()
        guard case let .connected(fd) = UpstreamSocket.connect(to: Self.loopback(upstream.port), noDelay: true,
                                                               source: nil) else {
            Issue.record("expected a completed connect")
            return
        }
        rig.connect(fd, timeout: .seconds(5), keepalive: TCPKeepalive(idleSeconds: 30, intervalSeconds: 5, count: 3))
        #expect(rig.waitUntilConnected())
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { close(ends[1]) }
        let attached = Date()
        rig.attachClient(ends[0], buffered: [])
        let early = Self.option(fd, SOL_SOCKET, SO_KEEPALIVE)
        if Date().timeIntervalSince(attached) < 0.5 { #expect(early == 0, "not set at once") }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, Self.option(fd, SOL_SOCKET, SO_KEEPALIVE) != 1 { usleep(10_000) }
        #expect(Self.option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, "set within 5 s")
        #expect(Date().timeIntervalSince(attached) >= 0.9)
        #expect(Self.option(fd, CInt(IPPROTO_TCP), TCP_KEEPIDLE) == 30)
        #expect(Self.option(fd, CInt(IPPROTO_TCP), TCP_KEEPINTVL) == 5)
        #expect(Self.option(fd, CInt(IPPROTO_TCP), TCP_KEEPCNT) == 3)
    }

    static func option(_ fd: CInt, _ level: CInt, _ name: CInt) -> CInt {
        var value: CInt = -1
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : -1
    }
}

/// A pump and an owner that records what the pump tells it, on a real event loop.
final class PumpConnectRig: PumpPairOwner, @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let eventLoop: any EventLoop
    private let pump: SocketPump
    private let state = NIOLockedValueBox<(connected: Int, outcome: PumpOutcome?)>((0, nil))
    private var pair: PumpedPair?

    init() throws {
        eventLoop = group.next()
        guard let pump = SocketPump(name: "test-pump", loop: eventLoop), pump.start() else { throw TestError.failed("no pump") }
        self.pump = pump
    }

    var connectedCount: Int { state.withLockedValue { $0.connected } }

    func connect(_ fd: CInt, timeout: TimeAmount, preface: [UInt8] = [], keepalive: TCPKeepalive? = nil) {
        let deadline = Int64(NIODeadline.now().uptimeNanoseconds) + timeout.nanoseconds
        let pair = PumpedPair.connecting(upstream: fd, deadline: deadline, owner: self, idleTimeoutNanos: 0,
                                         closeLingerNanos: 1_000_000_000)
        preface.withUnsafeBytes { if !$0.isEmpty { pair.aToB.pending.append($0.baseAddress!, count: $0.count) } }
        pair.upstreamKeepalive = keepalive
        self.pair = pair
        pump.send(.connect(pair))
    }

    func attachClient(_ fd: CInt, buffered: [UInt8]) {
        var buffer = ByteBuffer()
        buffer.writeBytes(buffered)
        pump.send(.attachClient(pair!, ClientHandover(fd: fd, buffered: buffer, inputEnded: false)))
    }

    func pumpConnected() { state.withLockedValue { $0.connected += 1 } }

    func pumpFinished(_ outcome: PumpOutcome) {
        state.withLockedValue { $0.outcome = outcome }
    }

    /// Whether the pump reported the connect within 10 s.
    func waitUntilConnected() -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, connectedCount == 0 { usleep(5_000) }
        return connectedCount > 0
    }

    /// The pair's end, waiting at most 10 s.
    func waitForOutcome() throws -> PumpOutcome {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let outcome = state.withLockedValue({ $0.outcome }) { return outcome }
            usleep(5_000)
        }
        throw TestError.timeout("the pump reported no end")
    }

    func stop() {
        if let outcome = state.withLockedValue({ $0.outcome }) { outcome.openDescriptors.forEach { close($0) } }
        pump.stop()
        try? group.syncShutdownGracefully()
    }
}
