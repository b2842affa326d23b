import NIOCore

/// Something with one deadline on the wheel at a time.
protocol DeadlineOwner: AnyObject {
    /// Where the owner sits on the wheel (kept by the wheel; nil when not on it).
    var wheelSlot: DeadlineWheel.Slot? { get set }
    /// Its deadline has come (possibly up to one tick late, never early).
    func deadlineReached()
}

/// Every stream deadline on one event loop, in a hashed timing wheel woken by one alarm.
///
/// Why not one NIO scheduled task per stream: each costs a task, a closure and a promise
/// (about 300 bytes an idle connection holds for its idle timeout), and a heap insertion
/// and removal per connection. Here arming is an array append, cancelling a swap-remove,
/// and a connection holds one slot. Stream deadlines are seconds to minutes long and may
/// fire a tick (10 ms) late; plugin timers, which need exact short delays, stay NIO tasks.
///
/// The alarm (`WheelAlarm`) is armed only while the wheel holds something, for the next
/// non-empty bucket. Confined to its event loop.
final class DeadlineWheel {
    struct Slot: Equatable {
        let bucket: Int
        var index: Int
    }

    private struct Entry {
        unowned(unsafe) let owner: any DeadlineOwner
        let dueTick: Int64
    }

    static let tickNanoseconds: Int64 = 10_000_000
    static let bucketCount = 512

    private let eventLoop: any EventLoop
    private var buckets: [[Entry]]
    /// The last tick whose bucket has been processed.
    private var processedTick: Int64
    private let alarm: any WheelAlarm
    /// The tick the alarm is armed for, if it is.
    private var alarmTick: Int64?
    private(set) var count = 0

    init(eventLoop: any EventLoop, alarm kind: WheelAlarmKind = .eventLoopTask) {
        self.eventLoop = eventLoop
        self.buckets = Array(repeating: [], count: Self.bucketCount)
        self.processedTick = Self.tick(at: eventLoop.now)
        // The alarm calls back into the wheel it belongs to; it is made before `self` is
        // complete, so the callback goes through a box filled in just after.
        let target = WheelBox()
        let fire: () -> Void = { target.wheel?.alarmFired() }
        switch kind {
        case .eventLoopTask: alarm = EventLoopTaskAlarm(eventLoop: eventLoop, fire: fire)
        case .dispatchTimer: alarm = DispatchTimerAlarm(eventLoop: eventLoop, fire: fire)
        }
        target.wheel = self
    }

    static func tick(at time: NIODeadline) -> Int64 {
        Int64(time.uptimeNanoseconds / UInt64(tickNanoseconds))
    }

    /// Puts `owner` on the wheel for `deadline` (rounded up to a tick), moving it if it was on.
    func schedule(_ owner: any DeadlineOwner, at deadline: NIODeadline) {
        remove(owner)
        let nanos = Int64(deadline.uptimeNanoseconds)
        let due = max((nanos + Self.tickNanoseconds - 1) / Self.tickNanoseconds, processedTick + 1)
        let bucket = Int(due % Int64(Self.bucketCount))
        owner.wheelSlot = Slot(bucket: bucket, index: buckets[bucket].count)
        buckets[bucket].append(Entry(owner: owner, dueTick: due))
        count += 1
        armTimer(atLeast: due)
    }

    /// Takes `owner` off the wheel, if it is on it.
    func remove(_ owner: any DeadlineOwner) {
        guard let slot = owner.wheelSlot else { return }
        owner.wheelSlot = nil
        count -= 1
        let last = buckets[slot.bucket].removeLast()
        if slot.index < buckets[slot.bucket].count {
            buckets[slot.bucket][slot.index] = last
            last.owner.wheelSlot = slot
        }
    }

    /// Arms the alarm for `tick` unless it is already due sooner.
    private func armTimer(atLeast tick: Int64) {
        if let alarmTick, alarmTick <= tick { return }
        alarmTick = tick
        alarm.arm(at: .uptimeNanoseconds(UInt64(tick * Self.tickNanoseconds)))
    }

    /// The loop is stopping: no alarm fires after this. Callable from any thread.
    func stopAlarm() { alarm.stop() }

    fileprivate func alarmFired() {
        alarmTick = nil
        advance(to: Self.tick(at: eventLoop.now))
    }

    /// Processes every bucket up to `tick`: due owners leave the wheel and are told; owners
    /// due in a later revolution stay. Then sleeps until the next non-empty bucket.
    func advance(to tick: Int64) {
        let first = processedTick + 1
        let last = min(tick, processedTick + Int64(Self.bucketCount))
        if first <= last {
            for current in first...last {
                // Marked processed first: an owner re-arming from its callback lands in a
                // later tick, never back in this one.
                processedTick = current
                fire(bucket: Int(current % Int64(Self.bucketCount)), upTo: tick)
            }
        }
        processedTick = max(processedTick, tick)
        if let next = nextOccupiedTick() { armTimer(atLeast: next) }
    }

    private func fire(bucket: Int, upTo tick: Int64) {
        var index = 0
        while index < buckets[bucket].count {
            let entry = buckets[bucket][index]
            guard entry.dueTick <= tick else {
                index += 1
                continue
            }
            let owner = entry.owner
            remove(owner) // the last entry moves into `index`: look at it next
            owner.deadlineReached()
        }
    }

    /// The first tick after the processed one whose bucket holds anything.
    private func nextOccupiedTick() -> Int64? {
        guard count > 0 else { return nil }
        for offset in 1...Int64(Self.bucketCount) {
            let tick = processedTick + offset
            if !buckets[Int(tick % Int64(Self.bucketCount))].isEmpty { return tick }
        }
        return nil
    }
}

/// Lets a wheel's alarm call back into the wheel without keeping it alive.
private final class WheelBox {
    weak var wheel: DeadlineWheel?
}
