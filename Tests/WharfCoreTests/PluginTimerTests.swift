import CWharf
import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// timer_start / timer_cancel through the host table: exactly one callback per started
/// timer (fired, cancelled or stream closed), never inside the call that started it.
@Suite struct PluginTimerTests {
    static let recordTimer: wharf_timer_cb = { userdata, _, status in
        PluginRecorder.from(userdata).events.append("timer:\(status)")
    }

    func start(_ stream: StreamHarness, after milliseconds: UInt64) -> OpaquePointer? {
        var timer: OpaquePointer?
        #expect(api.timer_start(stream.handle, milliseconds, Self.recordTimer, stream.recorder.pointer, &timer) == WHARF_OK)
        return timer
    }

    @Test func aTimerFiresOnceAtItsDelay() throws {
        let stream = try StreamHarness()
        let timer = start(stream, after: 250)
        stream.advance(by: .milliseconds(249))
        #expect(stream.events.isEmpty)
        stream.advance(by: .milliseconds(1))
        #expect(stream.events == ["timer:0"])
        stream.advance(by: .seconds(10))
        #expect(stream.events == ["timer:0"], "once")
        #expect(api.timer_cancel(timer) == WHARF_E_CLOSED, "a fired timer's handle is dead")
    }

    @Test func aZeroDelayRunsOnTheNextTurnNotInsideTheCall() throws {
        let stream = try StreamHarness()
        stream.recorder.onRead = { _, _, _, _ in }
        _ = start(stream, after: 0)
        #expect(stream.events.isEmpty)
        stream.run()
        #expect(stream.events == ["timer:0"])
    }

    @Test func cancellingCompletesAfterTheCallReturns() throws {
        let stream = try StreamHarness()
        let timer = start(stream, after: 1000)
        #expect(api.timer_cancel(timer) == WHARF_OK)
        #expect(stream.events.isEmpty, "never inside timer_cancel")
        #expect(api.timer_cancel(timer) == WHARF_E_CLOSED, "already cancelled")
        stream.run()
        #expect(stream.events == ["timer:\(WHARF_E_CANCELLED)"])
        stream.advance(by: .seconds(2))
        #expect(stream.events.count == 1, "a cancelled timer never fires")
    }

    @Test func aReadCallbackCanCancelAPendingTimer() throws {
        let stream = try StreamHarness()
        let timer = start(stream, after: 1000)
        stream.recorder.onRead = { _, _, _, _ in
            #expect(api.timer_cancel(timer) == WHARF_OK)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        try stream.feed("in time\n")
        stream.run()
        #expect(stream.events == ["read:in time\n", "timer:\(WHARF_E_CANCELLED)"])
    }

    @Test func timersDieWithTheirStreamBeforeItsCloseNotification() throws {
        let stream = try StreamHarness()
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        _ = start(stream, after: 1000)
        _ = start(stream, after: 2000)
        try stream.channel.close().wait()
        stream.run()
        #expect(stream.events == ["timer:\(WHARF_E_CLOSED)", "timer:\(WHARF_E_CLOSED)", "close:0"])
        var late: OpaquePointer?
        #expect(api.timer_start(stream.handle, 1, Self.recordTimer, nil, &late) == WHARF_E_CLOSED)
        stream.advance(by: .seconds(3))
        #expect(stream.events.count == 3)
    }

    @Test func badArgumentsAreRefused() throws {
        let stream = try StreamHarness()
        #expect(api.timer_start(stream.handle, 1, nil, nil, nil) == WHARF_E_INVALID)
        #expect(api.timer_start(stream.handle, UInt64(Int32.max) + 1, Self.recordTimer, nil, nil) == WHARF_E_INVALID)
        #expect(api.timer_cancel(nil) == WHARF_E_INVALID)
        #expect(api.timer_cancel(stream.handle) == WHARF_E_CLOSED, "a stream handle is not a timer")
        #expect(api.timer_start(stream.handle, 5, Self.recordTimer, stream.recorder.pointer, nil) == WHARF_OK,
                "the handle out-parameter is optional")
        stream.advance(by: .milliseconds(5))
        #expect(stream.events == ["timer:0"])
    }
}
