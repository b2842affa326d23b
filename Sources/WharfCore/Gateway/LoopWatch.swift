import CWharfLinux
import Dispatch
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Knows which event loops turn: every `interval` a timer off the loops posts a stamp to each
/// loop, which records when it ran and how long the post waited (its lag histogram). A loop
/// whose stamp is older than `stallAfter` is stalled (a plugin callback blocking it): new
/// connections are handed to the others, and the watchdog reports it with the plugin code
/// on its stack. Posted tasks, not a task scheduled on each loop: a loop with a scheduled
/// task pays for the timer queue on every turn (about 250 instructions a round trip).
final class LoopWatch: @unchecked Sendable {
    static let interval = TimeAmount.milliseconds(100)
    static let stallAfter: UInt64 = 500

    let loops: [any EventLoop]
    /// Per loop: milliseconds (CLOCK_MONOTONIC) of its last stamp; written by that loop only.
    private let stamps: UnsafeMutablePointer<UInt64>
    private let threads = NIOLockedValueBox<[pthread_t?]>([])
    private var timer: (any DispatchSourceTimer)?

    init(loops: [any EventLoop]) {
        self.loops = loops
        stamps = .allocate(capacity: loops.count)
        stamps.initialize(repeating: cwharf_monotonic_ms(), count: loops.count)
        threads.withLockedValue { $0 = Array(repeating: nil, count: loops.count) }
    }

    deinit { stamps.deallocate() }

    /// Starts stamping every loop, recording lag into `metrics`.
    func start(metrics: WorkerMetrics) {
        for (index, loop) in loops.enumerated() {
            loop.execute {
                let me = pthread_self()
                self.threads.withLockedValue { $0[index] = me }
            }
        }
        let counters = loops.indices.map { metrics.loop($0) }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "wharf-loop-watch"))
        let milliseconds = Int(Self.interval.nanoseconds / 1_000_000)
        timer.setEventHandler { [loops, stamps = UnsafeTransfer(stamps)] in
            let posted = DispatchTime.now().uptimeNanoseconds
            for (index, loop) in loops.enumerated() {
                let block = counters[index]
                loop.execute {
                    let waited = DispatchTime.now().uptimeNanoseconds &- posted
                    block.record(.loopLag, at: LoopField.lag, micros: waited / 1000)
                    cwharf_counter_store(stamps.value + index, cwharf_monotonic_ms())
                }
            }
        }
        timer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(milliseconds))
        timer.resume()
        self.timer = timer
    }

    func stop() { timer?.cancel() }

    /// When loop `index` last ran, in CLOCK_MONOTONIC milliseconds.
    func lastRun(_ index: Int) -> UInt64 { cwharf_counter_load(stamps + index) }

    /// Milliseconds since loop `index` last ran, as of `now`.
    func silence(_ index: Int, now: UInt64 = cwharf_monotonic_ms()) -> UInt64 {
        let last = lastRun(index)
        return now > last ? now - last : 0
    }

    func isStalled(_ index: Int, now: UInt64 = cwharf_monotonic_ms()) -> Bool {
        silence(index, now: now) > Self.stallAfter
    }

    func index(of loop: any EventLoop) -> Int? { loops.firstIndex { $0 === loop } }

    /// A loop that is not stalled, other than `index`, taking turns (nil: all are stalled).
    func healthyLoop(after index: Int) -> (any EventLoop)? {
        healthyIndex(after: index).map { loops[$0] }
    }

    /// `healthyLoop(after:)`'s index.
    func healthyIndex(after index: Int) -> Int? {
        let now = cwharf_monotonic_ms()
        for step in 1..<max(1, loops.count) {
            let candidate = (index + step) % loops.count
            if !isStalled(candidate, now: now) { return candidate }
        }
        return nil
    }

    func thread(of index: Int) -> pthread_t? { threads.withLockedValue { $0[index] } }
}
