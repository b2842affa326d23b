import CWharf
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WharfTestSupport
@testable import WharfCore

/// The socket pump driven directly: two loopback connections whose accepted ends are Wharf
/// streams, relayed into each other, with plain sockets as the two peers.
@Suite struct SocketPumpTests {
    @Test func bytesFlowBothWaysAndTwoFINsEndTheRelay() throws {
        let rig = try PumpRig()
        defer { rig.shutdown() }
        try rig.relay()
        try rig.peerA.send("hello")
        #expect(try rig.peerB.receiveString(count: 5) == "hello")
        try rig.peerB.send("world!")
        #expect(try rig.peerA.receiveString(count: 6) == "world!")
        rig.peerA.shutdownWrite()
        #expect(try rig.peerB.receiveUntilClose().0.isEmpty, "A's FIN reached B")
        rig.peerB.shutdownWrite()
        #expect(try rig.peerA.receiveUntilClose().0.isEmpty)
        let result = try rig.waitForResult()
        #expect(result == RelayResult(reason: nil, bytesAToB: 5, bytesBToA: 6))
        #expect(rig.waitForCloseReasons() == [nil, nil])
    }

    @Test func anAbortResetsItsPeerAndClosesTheOther() throws {
        let rig = try PumpRig()
        defer { rig.shutdown() }
        try rig.relay()
        try rig.peerA.send("x")
        #expect(try rig.peerB.receiveString(count: 1) == "x")
        rig.onLoop { rig.streams[0].close(reason: nil, graceful: false) }
        #expect(try rig.peerA.receiveUntilClose().1, "A's peer got a reset")
        let (rest, reset) = try rig.peerB.receiveUntilClose()
        #expect(rest.isEmpty && !reset, "B's peer got a FIN")
        #expect(try rig.waitForResult().reason == .closed)
        #expect(rig.waitForCloseReasons() == [nil, .closed], "the aborted stream closed as the plugin asked")
    }

    @Test func aGracefulCloseEndsBothWithFINs() throws {
        let rig = try PumpRig()
        defer { rig.shutdown() }
        try rig.relay()
        rig.onLoop { rig.streams[1].close(reason: nil, graceful: true) }
        #expect(try rig.peerA.receiveUntilClose() == ([], false))
        #expect(try rig.peerB.receiveUntilClose() == ([], false))
        #expect(try rig.waitForResult().reason == .closed)
        #expect(rig.waitForCloseReasons() == [.closed, nil])
    }

    @Test func relayedHandlesRefuseIOButStillDescribeTheirPeer() throws {
        let rig = try PumpRig(abiMinor: 2) // built against 1.2: WHARF_E_RELAYED reads as WHARF_E_BUSY
        defer { rig.shutdown() }
        try rig.relay()
        let port = rig.peerA.localPort
        let (read, write, shutdown, peerPort) = rig.onLoop { () -> (Int32, Int32, Int32, UInt32) in
            let handle = (rig.streams[0].owner as! ClosingRecorder).inner.handle
            var info = wharf_stream_info()
            info.struct_size = UInt32(MemoryLayout<wharf_stream_info>.size)
            _ = api.get_info(handle, &info)
            return (api.read_bytes(handle, 1, 1, { _, _, _, _, _ in }, nil),
                    api.write(handle, "x", 1, nil, nil), api.shutdown_write(handle), info.peer_port)
        }
        #expect([read, write, shutdown] == [WHARF_E_BUSY, WHARF_E_BUSY, WHARF_E_BUSY])
        #expect(peerPort == UInt32(port))
    }

    @Test func anIdleRelayTimesOut() throws {
        let rig = try PumpRig()
        defer { rig.shutdown() }
        try rig.relay(idleTimeout: .milliseconds(200))
        try rig.peerA.send("ping")
        #expect(try rig.peerB.receiveString(count: 4) == "ping")
        #expect(try rig.waitForResult() == RelayResult(reason: .timedOut, bytesAToB: 4, bytesBToA: 0))
        #expect(rig.peerA.isClosedByPeer() && rig.peerB.isClosedByPeer())
    }
}

/// A loop, a listener whose accepted connections become streams, and two client sockets.
final class PumpRig: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: LoopContext
    private let server: any Channel
    private let state = RigState()
    let peerA: TestSocket
    let peerB: TestSocket

    var streams: [IOStreamHandler] { state.withLockedValue { $0.streams } }

    init(abiMinor: UInt16 = 3) throws {
        let loop = LoopContext(eventLoop: group.next())
        self.loop = loop
        let pluginLoop = PluginLoop(loop: loop)
        let state = self.state
        server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try StreamChannelOptions.apply(to: channel, receiveAllocator: AdaptiveRecvByteBufferAllocator())
                    let adapter = PluginStream(pluginLoop: pluginLoop, abiMinor: abiMinor, role: .connected { _ in })
                    let owner = ClosingRecorder(adapter) { stream, reason in
                        state.withLockedValue { $0.finished[ObjectIdentifier(stream)] = reason }
                    }
                    let handler = IOStreamHandler(
                        loop: loop, options: StreamOptions(timeouts: StreamTimeouts(closeLinger: .seconds(2))),
                        streamID: loop.nextStreamID(), owner: owner)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    state.withLockedValue { $0.streams.append(handler) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = server.localAddress!.port!
        peerA = try TestSocket(port: port)
        try Self.waitUntil { state.withLockedValue { $0.streams.count } == 1 }
        peerB = try TestSocket(port: port)
        try Self.waitUntil { state.withLockedValue { $0.streams.count } == 2 }
    }

    func relay(idleTimeout: TimeAmount? = nil) throws {
        let (streams, state) = (self.streams, self.state)
        let refusal = onLoop { () -> StreamError? in
            Relay.start(streams[0], streams[1], idleTimeout: idleTimeout) { result in
                state.withLockedValue { $0.result = result }
            }
        }
        #expect(refusal == nil)
        #expect(onLoop { streams.map(\.machine.state) } == [.relayed(.pumped), .relayed(.pumped)],
                "the pump took both sockets")
    }

    func onLoop<T>(_ body: @escaping () -> T) -> T {
        let box = UnsafeTransfer(body)
        return try! loop.eventLoop.submit { UnsafeTransfer(box.value()) }.wait().value
    }

    func waitForResult() throws -> RelayResult {
        try Self.waitUntil { state.withLockedValue { $0.result } != nil }
        return state.withLockedValue { $0.result! }
    }

    /// Each stream's close reason once both close notifications ran, in accept order.
    func waitForCloseReasons() -> [StreamError?] {
        try? Self.waitUntil { state.withLockedValue { $0.finished.count } == 2 }
        return state.withLockedValue { state in state.streams.map { state.finished[ObjectIdentifier($0)] ?? .io } }
    }

    func shutdown() {
        loop.pump.stop()
        try? server.close().wait()
        try? group.syncShutdownGracefully()
    }

    private static func waitUntil(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            guard Date() < deadline else { throw PumpRigError.timedOut }
            usleep(5_000)
        }
    }

    enum PumpRigError: Error { case timedOut }
}

/// What the loop reports (streams accepted, close reasons, the relay's result), read by the
/// test thread. Streams are loop-confined; the test only compares and hands them back.
final class RigState: @unchecked Sendable {
    struct Values {
        var streams: [IOStreamHandler] = []
        var finished: [ObjectIdentifier: StreamError?] = [:]
        var result: RelayResult?
    }

    private let lock = NIOLock()
    private var values = Values()

    func withLockedValue<T>(_ body: (inout Values) -> T) -> T {
        lock.withLock { body(&values) }
    }
}

/// Forwards to the plugin adapter and records each stream's close reason.
final class ClosingRecorder: StreamOwner {
    let inner: PluginStream
    private let onClose: (IOStreamHandler, StreamError?) -> Void

    init(_ inner: PluginStream, onClose: @escaping (IOStreamHandler, StreamError?) -> Void) {
        self.inner = inner
        self.onClose = onClose
    }

    func streamOpened(_ stream: IOStreamHandler) -> Bool { inner.streamOpened(stream) }
    func streamRead(_ stream: IOStreamHandler, _ token: CompletionToken,
                    _ result: Result<UnsafeRawBufferPointer, StreamError>) {
        inner.streamRead(stream, token, result)
    }
    func streamWrote(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {
        inner.streamWrote(stream, token, error)
    }
    func streamUpgraded(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {
        inner.streamUpgraded(stream, token, error)
    }
    func streamClosed(_ stream: IOStreamHandler, reason: StreamError?) {
        onClose(stream, reason)
        inner.streamClosed(stream, reason: reason)
    }
    func streamAbandoned(_ stream: IOStreamHandler, reason: StreamError, error: (any Error)?) {
        inner.streamAbandoned(stream, reason: reason, error: error)
    }
}
