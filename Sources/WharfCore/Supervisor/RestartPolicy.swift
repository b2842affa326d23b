import NIOCore

/// When to start a worker again after it crashed. A lone crash is answered at once; five
/// within ten seconds is a crash loop, answered with waits that double (1 s, 2 s, 4 s … up
/// to a minute) until a worker has stayed up for `stableUptime`. Tornado counts restarts over
/// the whole process lifetime and then gives up; nginx respawns at full speed forever: this
/// neither gives up on a slot nor lets a broken plugin burn a core.
public struct RestartPolicy: Sendable, Equatable {
    public var threshold = 5
    public var window = TimeAmount.seconds(10)
    public var firstBackoff = TimeAmount.seconds(1)
    public var maximumBackoff = TimeAmount.seconds(60)
    public var stableUptime = TimeAmount.seconds(30)

    private var recentCrashes: [NIODeadline] = []
    /// 0 outside a crash loop; each crash inside one doubles the wait.
    private(set) var backoffLevel = 0

    public init() {}

    public var inCrashLoop: Bool { backoffLevel > 0 }

    /// Records a crash of a worker that had been up for `uptime`; returns how long to wait
    /// before starting the next one.
    public mutating func delay(afterCrashAt now: NIODeadline, uptime: TimeAmount) -> TimeAmount {
        if uptime >= stableUptime {
            recentCrashes.removeAll()
            backoffLevel = 0
        }
        recentCrashes.removeAll { now - $0 >= window }
        recentCrashes.append(now)
        guard backoffLevel > 0 || recentCrashes.count >= threshold else { return .zero }
        backoffLevel += 1
        let doubled = firstBackoff.nanoseconds << min(backoffLevel - 1, 20)
        return .nanoseconds(min(doubled, maximumBackoff.nanoseconds))
    }

    /// Crashes within the window, for the log.
    public var recentCrashCount: Int { recentCrashes.count }
}
