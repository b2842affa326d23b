import CWharfLinux
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Knows which event loops turn: each loop stamps the time every `interval` (and records how
/// late the stamp came in its lag histogram). A loop whose stamp is older than `stallAfter`
/// is stalled (a plugin callback blocking it): new connections are handed to the others, and
/// the worker's watchdog reports it with the plugin code on its stack.
final class LoopWatch: @unchecked Sendable {
    static let interval = TimeAmount.milliseconds(100)
    static let stallAfter: UInt64 = 500

    let loops: [any EventLoop]
    /// Per loop: milliseconds (CLOCK_MONOTONIC) of its last stamp; written by that loop only.
    private let stamps: UnsafeMutablePointer<UInt64>
    private let threads = NIOLockedValueBox<[pthread_t?]>([])

    init(loops: [any EventLoop]) {
        self.loops = loops
        stamps = .allocate(capacity: loops.count)
        stamps.initialize(repeating: cwharf_monotonic_ms(), count: loops.count)
        threads.withLockedValue { $0 = Array(repeating: nil, count: loops.count) }
    }

    deinit { stamps.deallocate() }

    /// Starts stamping on every loop, recording lag into `metrics`.
    func start(metrics: WorkerMetrics) {
        for (index, loop) in loops.enumerated() {
            let counters = metrics.loop(index)
            loop.execute {
                let me = pthread_self()
                self.threads.withLockedValue { $0[index] = me }
            }
            loop.scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) { _ in
                let now = cwharf_monotonic_ms()
                let late = now &- self.lastRun(index) &- UInt64(Self.interval.nanoseconds / 1_000_000)
                counters.record(.loopLag, at: LoopField.lag, micros: Int64(bitPattern: late) > 0 ? late * 1000 : 0)
                cwharf_counter_store(self.stamps + index, now)
            }
        }
    }

    /// When loop `index` last ran, in CLOCK_MONOTONIC milliseconds.
    func lastRun(_ index: Int) -> UInt64 { cwharf_counter_load(stamps + index) }

    func isStalled(_ index: Int, now: UInt64 = cwharf_monotonic_ms()) -> Bool {
        now > lastRun(index) && now - lastRun(index) > Self.stallAfter
    }

    func index(of loop: any EventLoop) -> Int? { loops.firstIndex { $0 === loop } }

    /// A loop that is not stalled, other than `index`, taking turns (nil: all are stalled).
    func healthyLoop(after index: Int) -> (any EventLoop)? {
        let now = cwharf_monotonic_ms()
        for step in 1..<max(1, loops.count) {
            let candidate = (index + step) % loops.count
            if !isStalled(candidate, now: now) { return loops[candidate] }
        }
        return nil
    }

    func thread(of index: Int) -> pthread_t? { threads.withLockedValue { $0[index] } }
}
