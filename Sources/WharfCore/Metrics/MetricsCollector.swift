import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The supervisor's view of every worker's counters: the segments of live workers, and the
/// totals of workers that are gone, so that no counter ever goes backwards — not across a
/// reload, not when a worker exits or crashes. Confined to the supervisor's event loop.
public final class MetricsCollector {
    struct Live {
        let segment: MetricsSegment
        let generation: Int
        let slot: Int
        /// Wall-clock seconds since the epoch.
        let startedAt: Double
    }

    /// Why a worker was replaced: the `cause` label of `wharf_worker_restarts_total`.
    static let restartCauses = ["signal", "exit", "stall"]

    private var live: [pid_t: Live] = [:]
    /// What workers that are gone counted (their counters and histograms; no gauge).
    private var retired = MetricsTotals()
    private(set) var restarts: [String: UInt64] = Dictionary(uniqueKeysWithValues: restartCauses.map { ($0, 0) })
    private(set) var reloads: (ok: UInt64, failed: UInt64) = (0, 0)
    /// Failures that cost a restart, per worker slot.
    private(set) var restartsBySlot: [Int: UInt64] = [:]

    struct LoopKey: Hashable, Comparable {
        var slot: Int
        var loop: Int
        static func < (a: LoopKey, b: LoopKey) -> Bool { (a.slot, a.loop) < (b.slot, b.loop) }
    }

    public init() {}

    func started(_ pid: pid_t, segment: MetricsSegment, generation: Int, slot: Int) {
        live[pid] = Live(segment: segment, generation: generation, slot: slot, startedAt: WallClock.now)
    }

    func startTime(of pid: pid_t) -> Double? { live[pid]?.startedAt }

    /// Folds a gone worker's counters into the retired totals. Connections it still had
    /// open are counted closed with reason `worker_exit`, so accepted = closed + active holds.
    func exited(_ pid: pid_t, failure cause: String?) {
        guard let worker = live.removeValue(forKey: pid) else { return }
        if let cause {
            restarts[cause, default: 0] += 1
            restartsBySlot[worker.slot, default: 0] += 1
        }
        retired.add(worker.segment, slot: worker.slot, gone: true)
    }

    func reloaded(ok: Bool) {
        if ok { reloads.ok += 1 } else { reloads.failed += 1 }
    }

    /// Every counter now: retired totals plus what live workers hold.
    func snapshot() -> MetricsSnapshot {
        var totals = retired
        for worker in live.values { totals.add(worker.segment, slot: worker.slot, gone: false) }
        return MetricsSnapshot(listeners: totals.listeners, loops: totals.loops, process: totals.process,
                               restarts: restarts, reloads: reloads, plugins: totals.plugins)
    }

    /// Accepted and not yet counted closed. The two are written by the same thread in order,
    /// but read at different instants: clamp a momentary inversion to zero.
    static func openConnections(_ totals: [UInt64]) -> UInt64 {
        let closed = CloseReason.allCases.reduce(UInt64(0)) { $0 &+ totals[ListenerField.closed + $1.rawValue] }
        let accepted = totals[ListenerField.accepted]
        return accepted > closed ? accepted - closed : 0
    }
}

/// Counters summed by their labels, over any number of workers' segments.
struct MetricsTotals {
    var listeners: [MetricsLayout.ListenerLabels: MetricsSnapshot.Listener] = [:]
    var loops: [MetricsCollector.LoopKey: [UInt64]] = [:]
    var process = [UInt64](repeating: 0, count: ProcessField.count)
    var plugins: [PluginSeriesKey: PluginSeries] = [:]

    /// Adds what one worker counted. A live worker's open connections are active; a `gone`
    /// one's are counted closed with reason `worker_exit` (so accepted = closed + active
    /// holds), and its gauges, which describe a present that is over, are left out.
    mutating func add(_ segment: MetricsSegment, slot: Int, gone: Bool) {
        for (index, labels) in segment.layout.listeners.enumerated() {
            var counted = segment.listenerTotals(index)
            let open = MetricsCollector.openConnections(counted)
            if gone { counted[ListenerField.closed + CloseReason.workerExit.rawValue] &+= open }
            var entry = listeners[labels]
                ?? MetricsSnapshot.Listener(totals: Array(repeating: 0, count: ListenerField.count), active: 0)
            Self.add(counted, into: &entry.totals)
            if !gone { entry.active &+= open }
            listeners[labels] = entry
        }
        for loop in 0..<segment.layout.loops {
            let key = MetricsCollector.LoopKey(slot: slot, loop: loop)
            Self.add(segment.loopTotals(loop), into: &loops[key, default: Array(repeating: 0, count: LoopField.count)])
        }
        Self.add(segment.processTotals(), into: &process)
        for metric in segment.pluginMetrics() where !gone || metric.spec.kind != .gauge {
            PluginSeries.merge(metric, into: &plugins)
        }
    }

    private static func add(_ values: [UInt64], into totals: inout [UInt64]) {
        for index in values.indices { totals[index] &+= values[index] }
    }
}

/// Every counter at one instant, summed over processes, keyed by label values.
struct MetricsSnapshot {
    struct Listener {
        var totals: [UInt64]
        var active: UInt64

        subscript(field: Int) -> UInt64 { totals[field] }
        func closed(_ reason: CloseReason) -> UInt64 { totals[ListenerField.closed + reason.rawValue] }
    }

    var listeners: [MetricsLayout.ListenerLabels: Listener]
    var loops: [MetricsCollector.LoopKey: [UInt64]]
    var process: [UInt64]
    var restarts: [String: UInt64]
    var reloads: (ok: UInt64, failed: UInt64)
    var plugins: [PluginSeriesKey: PluginSeries] = [:]

    /// Listener labels in a stable order.
    var listenerLabels: [MetricsLayout.ListenerLabels] {
        listeners.keys.sorted { ($0.listener, $0.plugin) < ($1.listener, $1.plugin) }
    }
}

/// Wall-clock time, for what people read (start times, ages); deadlines use NIODeadline.
enum WallClock {
    /// Seconds since the epoch.
    static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

/// One series of a plugin metric, by metric name, instance and label values.
struct PluginSeriesKey: Hashable, Comparable {
    var name: String
    var instance: String
    var labels: [String]

    static func < (a: PluginSeriesKey, b: PluginSeriesKey) -> Bool {
        (a.name, a.instance, a.labels.joined(separator: "\u{1F}")) < (b.name, b.instance, b.labels.joined(separator: "\u{1F}"))
    }
}

/// A plugin metric series summed over workers: its description and its words (a value as
/// an Int64 bit pattern, or a histogram's bucket counts, +Inf count and sum as Double bits).
struct PluginSeries {
    var kind: PluginMetricSpec.Kind
    var help: String
    var labelNames: [String]
    var buckets: [Double]
    var words: [UInt64]

    /// Adds every series of `metric` into `series`.
    static func merge(_ metric: PluginMetricValues, into series: inout [PluginSeriesKey: PluginSeries]) {
        let spec = metric.spec
        for (row, labels) in spec.series.enumerated() {
            let key = PluginSeriesKey(name: spec.name, instance: metric.instance, labels: labels)
            var entry = series[key] ?? PluginSeries(kind: spec.kind, help: spec.help, labelNames: spec.labelNames,
                                                    buckets: spec.buckets,
                                                    words: Array(repeating: 0, count: spec.wordsPerSeries))
            guard entry.kind == spec.kind, entry.words.count == spec.wordsPerSeries else { continue }
            for (index, word) in metric.series[row].enumerated() {
                if spec.kind == .histogram, index == spec.wordsPerSeries - 1 {
                    entry.words[index] = (Double(bitPattern: entry.words[index]) + Double(bitPattern: word)).bitPattern
                } else {
                    entry.words[index] &+= word
                }
            }
            series[key] = entry
        }
    }
}
