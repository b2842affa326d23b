import CWharf
import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// Every clock on a real stream, through the host table, on an EmbeddedChannel whose loop
/// has a virtual clock: deadlines are exact, and nothing sleeps.
@Suite struct StreamTimeoutTests {
    func harness(_ timeouts: StreamTimeouts, abiMinor: UInt16 = 3) throws -> StreamHarness {
        let stream = try StreamHarness(timeouts: timeouts, abiMinor: abiMinor)
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        return stream
    }

    @Test func aSilentConnectionClosesAtTheIdleDeadline() throws {
        let stream = try harness(StreamTimeouts(idle: .milliseconds(1000)))
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.advance(by: .milliseconds(999))
        #expect(stream.channel.isActive)
        stream.advance(by: .milliseconds(1))
        #expect(!stream.channel.isActive)
        #expect(stream.events == ["read-error:\(WHARF_E_IDLE_TIMEOUT)", "close:\(WHARF_E_IDLE_TIMEOUT)"])
    }

    @Test func trafficEitherWayPushesTheIdleDeadline() throws {
        let stream = try harness(StreamTimeouts(idle: .milliseconds(1000)))
        stream.recorder.onRead = { recorder, handle, status, bytes in
            guard status == WHARF_OK else { return }
            _ = api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.advance(by: .milliseconds(800))
        try stream.feed("ping\n")
        stream.advance(by: .milliseconds(800))
        #expect(stream.write("pong") == WHARF_OK)
        stream.advance(by: .milliseconds(999))
        #expect(stream.channel.isActive, "1,800 ms after the read, 999 after the write")
        stream.advance(by: .milliseconds(1))
        #expect(!stream.channel.isActive)
        #expect(stream.events.last == "close:\(WHARF_E_IDLE_TIMEOUT)")
    }

    @Test func aTrickledMessageIsCutAtTheReadTimeout() throws {
        let stream = try harness(StreamTimeouts(idle: .seconds(60), read: .milliseconds(500)))
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.advance(by: .seconds(10))
        #expect(stream.channel.isActive, "waiting for a message is idle time, not a slow read")
        for _ in 0..<4 {
            try stream.feed("x")
            stream.advance(by: .milliseconds(120))
        }
        #expect(stream.channel.isActive)
        stream.advance(by: .milliseconds(20))
        #expect(!stream.channel.isActive, "500 ms after the message's first byte")
        #expect(stream.events == ["read-error:\(WHARF_E_READ_TIMEOUT)", "close:\(WHARF_E_READ_TIMEOUT)"])
    }

    @Test func lifetimeBoundsABusyConnection() throws {
        let stream = try harness(StreamTimeouts(idle: .milliseconds(100), lifetime: .milliseconds(1000)))
        stream.recorder.onRead = { recorder, handle, status, _ in
            if status == WHARF_OK { _ = api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer) }
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        for _ in 0..<19 {
            stream.advance(by: .milliseconds(50))
            try stream.feed("m\n")
        }
        #expect(stream.channel.isActive)
        stream.advance(by: .milliseconds(50))
        #expect(!stream.channel.isActive)
        #expect(stream.events.suffix(2) == ["read-error:\(WHARF_E_LIFETIME)", "close:\(WHARF_E_LIFETIME)"])
    }

    @Test func aPluginBuiltAgainstAnOlderABISeesTimeout() throws {
        let stream = try harness(StreamTimeouts(idle: .milliseconds(100)), abiMinor: 2)
        stream.advance(by: .milliseconds(100))
        #expect(stream.events == ["close:\(WHARF_E_TIMEOUT)"])
    }

    @Test func aPluginReadDeadlineFailsTheReadAndKeepsTheStream() throws {
        let stream = try harness(StreamTimeouts())
        #expect(api.set_read_timeout(stream.handle, 300) == WHARF_OK)
        #expect(stream.readUntil("\n") == WHARF_OK)
        try stream.feed("par")
        stream.advance(by: .milliseconds(299))
        #expect(stream.events.isEmpty)
        stream.advance(by: .milliseconds(1))
        #expect(stream.events == ["read-error:\(WHARF_E_TIMEOUT)"])
        #expect(stream.channel.isActive, "the plugin decides whether to close")
        #expect(stream.readUntil("\n") == WHARF_OK, "the stream is still usable")
        try stream.feed("tial\n")
        stream.run()
        #expect(stream.events.last == "read:partial\n", "bytes that arrived were kept")
        #expect(api.set_read_timeout(stream.handle, 0) == WHARF_OK)
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.advance(by: .seconds(3600))
        #expect(stream.events.count == 2, "0 turns it off")
    }

    @Test func aStalledGracefulCloseIsCutAtTheLinger() throws {
        let stream = try harness(StreamTimeouts(closeLinger: .milliseconds(400)))
        // An output that never drains: the embedded channel holds writes until flushed out,
        // so block it with a high-water mark of 1 byte and no reader.
        try stream.channel.pipeline.syncOperations.addHandler(HoldWrites(), position: .first)
        #expect(stream.write("unsent") == WHARF_OK)
        #expect(api.close(stream.handle) == WHARF_OK)
        stream.advance(by: .milliseconds(399))
        #expect(stream.channel.isActive, "still flushing")
        stream.advance(by: .milliseconds(1))
        #expect(!stream.channel.isActive)
        #expect(stream.events == ["close:\(WHARF_E_TIMEOUT)"])
    }

    @Test func quiescingClosesAnIdleStreamAtOnceAndABusyOneWhenIdle() throws {
        let idle = try harness(StreamTimeouts())
        #expect(idle.readUntil("\n") == WHARF_OK)
        idle.run()
        idle.loop.dispatch { idle.handler.quiesce() }
        idle.run()
        #expect(!idle.channel.isActive)
        #expect(idle.events == ["read-error:\(WHARF_E_SHUTDOWN)", "close:\(WHARF_E_SHUTDOWN)"])

        let busy = try harness(StreamTimeouts())
        busy.recorder.onRead = { recorder, handle, status, bytes in
            guard status == WHARF_OK else { return }
            _ = api.write(handle, bytes, bytes.count, nil, nil)
            _ = api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer)
        }
        #expect(busy.readUntil("\n") == WHARF_OK)
        try busy.feed("half")
        busy.loop.dispatch { busy.handler.quiesce() }
        busy.run()
        #expect(busy.channel.isActive, "a message has begun: let it finish")
        try busy.feed(" done\n")
        busy.run()
        #expect(!busy.channel.isActive, "idle again right after the reply")
        #expect(try busy.sent() == "half done\n")
        #expect(busy.events.last == "close:\(WHARF_E_SHUTDOWN)")
    }
}

/// Swallows writes without completing them: an output that never drains.
final class HoldWrites: ChannelOutboundHandler {
    typealias OutboundIn = Any
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {}
    func flush(context: ChannelHandlerContext) {}
}
