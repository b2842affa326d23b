import Dispatch
import NIOCore

/// What wakes a loop's `DeadlineWheel`: one pending alarm per wheel, re-armed only when the
/// wheel's next due tick moves earlier. `fire` always runs on the wheel's loop.
protocol WheelAlarm: AnyObject {
    func arm(at deadline: NIODeadline)
    /// For good: the loop is stopping. Callable from any thread.
    func stop()
}

/// Which alarm a loop's wheel uses.
public enum WheelAlarmKind: Sendable {
    /// A scheduled task on the loop itself: deterministic, and on an `EmbeddedEventLoop` it
    /// follows the virtual clock (the unit tests).
    case eventLoopTask
    /// A Dispatch timer off the loop, which posts onto it when due (the daemon). A NIO loop
    /// holding any scheduled task peeks its task heap and computes an epoll timeout on every
    /// iteration, about 250 instructions each; with this the loop holds none.
    case dispatchTimer
}

/// See `WheelAlarmKind.eventLoopTask`.
final class EventLoopTaskAlarm: WheelAlarm {
    private let eventLoop: any EventLoop
    private let fire: () -> Void
    private var task: Scheduled<Void>?

    init(eventLoop: any EventLoop, fire: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.fire = fire
    }

    /// The loop's own shutdown cancels its scheduled tasks.
    func stop() {}

    func arm(at deadline: NIODeadline) {
        task?.cancel()
        task = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            task = nil
            fire()
        }
    }
}

/// See `WheelAlarmKind.dispatchTimer`. Dispatch sources are safe to reschedule from any
/// thread; a fire already on its way when the alarm moves is harmless (the wheel finds
/// nothing due and re-arms).
final class DispatchTimerAlarm: WheelAlarm, @unchecked Sendable {
    private static let queue = DispatchQueue(label: "wharf.deadline-wheels")
    private let source: DispatchSourceTimer

    /// `fire` is confined to `eventLoop`, and only ever runs there.
    init(eventLoop: any EventLoop, fire: @escaping () -> Void) {
        let onLoop = UnsafeTransfer(fire)
        source = DispatchSource.makeTimerSource(queue: Self.queue)
        source.setEventHandler { eventLoop.execute { onLoop.value() } }
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    func arm(at deadline: NIODeadline) {
        // Both clocks are CLOCK_MONOTONIC: an uptime deadline carries over as is.
        source.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline.uptimeNanoseconds),
                        leeway: .milliseconds(1))
    }

    func stop() { source.cancel() }

    deinit { source.cancel() }
}
