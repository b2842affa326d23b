import CWharfLinux
import NIOConcurrencyHelpers

/// A plugin metric as registered (wharf.h: wharf_metric_spec), validated.
struct PluginMetricSpec: Equatable, Sendable {
    enum Kind: UInt32, Sendable {
        case counter = 1, gauge = 2, histogram = 3

        var name: String {
            switch self {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
            }
        }
    }

    var kind: Kind
    var name: String
    var help: String
    var labelNames: [String]
    /// One row of label values per series.
    var series: [[String]]
    var buckets: [Double]

    /// Words per series: one, or a histogram's buckets, +Inf and its sum.
    var wordsPerSeries: Int { kind == .histogram ? buckets.count + 2 : 1 }
    var words: Int { wordsPerSeries * series.count }

    /// Why the spec breaks a rule of wharf.h, if it does.
    var problem: String? {
        func isName(_ text: String, colons: Bool) -> Bool {
            guard let first = text.unicodeScalars.first, text.utf8.count <= 100 else { return false }
            func allowed(_ scalar: Unicode.Scalar, leading: Bool) -> Bool {
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || scalar == "_"
                    || (colons && scalar == ":") || (!leading && scalar >= "0" && scalar <= "9")
            }
            return allowed(first, leading: true) && text.unicodeScalars.dropFirst().allSatisfy { allowed($0, leading: false) }
        }
        func isPrintable(_ text: String, limit: Int) -> Bool {
            text.utf8.count <= limit && !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
        }
        if !isName(name, colons: true) { return "name '\(name)' is not [a-zA-Z_:][a-zA-Z0-9_:]* (at most 100 bytes)" }
        if name.hasPrefix("wharf_") { return "name '\(name)': the wharf_ prefix is the host's" }
        if !isPrintable(help, limit: 200) { return "help of '\(name)' is not one printable line of at most 200 bytes" }
        if labelNames.count > 4 { return "'\(name)' has more than 4 labels" }
        for label in labelNames where !isName(label, colons: false) || label == "instance" || label == "le" {
            return "label name '\(label)' of '\(name)' is not [a-zA-Z_][a-zA-Z0-9_]* (nor instance or le)"
        }
        if Set(labelNames).count != labelNames.count { return "'\(name)' repeats a label name" }
        if series.isEmpty || series.count > 256 { return "'\(name)' needs 1-256 series" }
        for row in series where row.contains(where: { !isPrintable($0, limit: 200) }) {
            return "a label value of '\(name)' is not printable (or longer than 200 bytes)"
        }
        if kind == .histogram {
            if buckets.isEmpty || buckets.count > 16 { return "histogram '\(name)' needs 1-16 bucket bounds" }
            if zip(buckets, buckets.dropFirst()).contains(where: { $0 >= $1 }) || buckets.contains(where: { !$0.isFinite }) {
                return "the bucket bounds of '\(name)' must be finite and increasing"
            }
        } else if !buckets.isEmpty {
            return "'\(name)' is not a histogram but has bucket bounds"
        }
        return nil
    }
}

/// One loop's handle on a registered metric (`wharf_metric *`): where its series' values sit
/// in that loop's region of the worker's segment. Written by that loop's thread only.
final class PluginMetric: @unchecked Sendable {
    let spec: PluginMetricSpec
    /// nil: validate mode, nothing is recorded.
    private let values: UnsafeMutablePointer<UInt64>?

    init(spec: PluginMetricSpec, values: UnsafeMutablePointer<UInt64>?) {
        self.spec = spec
        self.values = values
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ handle: OpaquePointer) -> PluginMetric {
        Unmanaged<PluginMetric>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
    }

    func add(_ series: UInt32, _ value: Int64) {
        guard let values, Int(series) < spec.series.count, spec.kind != .histogram else { return }
        if spec.kind == .counter, value < 0 { return }
        cwharf_counter_add(values + Int(series), UInt64(bitPattern: value))
    }

    func set(_ series: UInt32, _ value: Int64) {
        guard let values, Int(series) < spec.series.count, spec.kind == .gauge else { return }
        cwharf_counter_store(values + Int(series), UInt64(bitPattern: value))
    }

    func observe(_ series: UInt32, _ value: Double) {
        guard let values, Int(series) < spec.series.count, spec.kind == .histogram, !value.isNaN else { return }
        let base = values + Int(series) * spec.wordsPerSeries
        let bucket = spec.buckets.firstIndex { value <= $0 } ?? spec.buckets.count
        cwharf_counter_add(base + bucket, 1)
        let sum = base + spec.buckets.count + 1
        cwharf_counter_store(sum, (Double(bitPattern: cwharf_counter_load(sum)) + value).bitPattern)
    }
}

/// The worker's plugin metrics: each name an instance registers gets words in the plugin
/// area of every loop region (the same offset in each), and one description line the
/// supervisor reads. Registration runs while the plugins initialise.
final class PluginMetricsRegistry: @unchecked Sendable {
    private let segment: MetricsSegment
    private let lock = NIOLock()
    private var nextWord = 0
    private var text: [UInt8] = []
    private var registered: [String: (offset: Int, spec: PluginMetricSpec)] = [:]

    init(segment: MetricsSegment) {
        self.segment = segment
    }

    enum Failure: Error {
        case invalid(String)
        case full
    }

    /// The handle for `spec` on `loop`, registering it on first use.
    func register(instance: String, loop: Int, spec: PluginMetricSpec) throws(Failure) -> PluginMetric {
        if let problem = spec.problem { throw .invalid(problem) }
        let offset = try lock.withLockTyped { () throws(Failure) -> Int in
            let key = instance + "\u{0}" + spec.name
            if let existing = registered[key] {
                guard existing.spec == spec else {
                    throw .invalid("'\(spec.name)' was registered before with another type, labels, series or buckets")
                }
                return existing.offset
            }
            let line = Self.describe(spec, instance: instance, offset: nextWord)
            guard nextWord + spec.words <= MetricsLayout.pluginWords,
                  text.count + line.count <= MetricsLayout.pluginTextBytes else { throw .full }
            let offset = nextWord
            nextWord += spec.words
            registered[key] = (offset, spec)
            publish(line)
            return offset
        }
        let region = segment.layout.pluginOffset(region: MetricsLayout.loopRegion(loop))
        return PluginMetric(spec: spec, values: segment.words + region + offset)
    }

    /// Appends a description line and then, separately, the new length: the supervisor
    /// reads no further than the length it sees.
    private func publish(_ line: [UInt8]) {
        let layout = segment.layout
        let bytes = UnsafeMutableRawPointer(segment.words).advanced(by: layout.pluginTextByteOffset + text.count)
        line.withUnsafeBytes { bytes.copyMemory(from: $0.baseAddress!, byteCount: line.count) }
        text += line
        cwharf_counter_store_release(segment.words + layout.pluginTextLengthWord, UInt64(text.count))
    }

    /// offset, kind, instance, name, help, label names, series rows, bucket bounds: tab
    /// separated (validation keeps control characters out of every field).
    static func describe(_ spec: PluginMetricSpec, instance: String, offset: Int) -> [UInt8] {
        let fields = ["\(offset)", "\(spec.kind.rawValue)", instance, spec.name, spec.help,
                      spec.labelNames.joined(separator: "\u{1F}"),
                      spec.series.map { $0.joined(separator: "\u{1F}") }.joined(separator: "\u{1E}"),
                      spec.buckets.map { "\($0)" }.joined(separator: ",")]
        return Array((fields.joined(separator: "\t") + "\n").utf8)
    }
}

/// The supervisor's reading of one worker's plugin metrics.
struct PluginMetricValues {
    let instance: String
    let spec: PluginMetricSpec
    /// Per series, its words summed over the loops: a counter or gauge value (Int64 bit
    /// pattern), or a histogram's bucket counts, +Inf and the sum (Double bit pattern).
    var series: [[UInt64]]
}

extension MetricsSegment {
    /// Every plugin metric the worker registered, with its values now.
    func pluginMetrics() -> [PluginMetricValues] {
        let length = Int(cwharf_counter_load_acquire(words + layout.pluginTextLengthWord))
        guard length > 0, length <= MetricsLayout.pluginTextBytes else { return [] }
        let start = UnsafeRawPointer(words).advanced(by: layout.pluginTextByteOffset)
        let text = String(decoding: UnsafeRawBufferPointer(start: start, count: length), as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 8, let offset = Int(fields[0]), let raw = UInt32(fields[1]),
                  let kind = PluginMetricSpec.Kind(rawValue: raw) else { return nil }
            let labels = fields[5].isEmpty ? [] : fields[5].split(separator: "\u{1F}", omittingEmptySubsequences: false)
                .map(String.init)
            let rows = fields[6].split(separator: "\u{1E}", omittingEmptySubsequences: false).map { row in
                labels.isEmpty ? [] : row.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
            }
            let buckets = fields[7].isEmpty ? [] : fields[7].split(separator: ",").compactMap { Double($0) }
            let spec = PluginMetricSpec(kind: kind, name: fields[3], help: fields[4], labelNames: labels, series: rows,
                                        buckets: buckets)
            guard offset + spec.words <= MetricsLayout.pluginWords else { return nil }
            let series = (0..<rows.count).map { row in
                (0..<spec.wordsPerSeries).map { word in
                    let isSum = kind == .histogram && word == spec.wordsPerSeries - 1
                    var total: UInt64 = 0
                    var sum = 0.0
                    for loop in 0..<layout.loops {
                        let value = load(layout.pluginOffset(region: MetricsLayout.loopRegion(loop)) + offset
                                         + row * spec.wordsPerSeries + word)
                        if isSum { sum += Double(bitPattern: value) } else { total &+= value }
                    }
                    return isSum ? sum.bitPattern : total
                }
            }
            return PluginMetricValues(instance: fields[2], spec: spec, series: series)
        }
    }
}

extension NIOLock {
    /// `withLock` for a body with a typed error.
    func withLockTyped<Value, Failure: Error>(_ body: () throws(Failure) -> Value) throws(Failure) -> Value {
        lock()
        defer { unlock() }
        return try body()
    }
}
