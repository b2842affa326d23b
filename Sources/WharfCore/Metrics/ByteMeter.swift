import CWharfLinux

/// Where a stream counts the bytes it moves: two adjacent words, [received, sent], of its
/// listener's block in its loop's region (the client side's words for an accepted stream,
/// the upstream side's for a stream a plugin connected). One pointer, so a stream pays
/// 8 bytes for it and a count is one load and one store.
struct ByteMeter: @unchecked Sendable {
    private let words: UnsafeMutablePointer<UInt64>

    init(_ block: CounterBlock, upstream: Bool) {
        words = block.base + (upstream ? ListenerField.upstreamReceived : ListenerField.received)
    }

    private init(words: UnsafeMutablePointer<UInt64>) { self.words = words }

    @inline(__always)
    func received(_ count: Int) { cwharf_counter_add(words, UInt64(truncatingIfNeeded: count)) }

    @inline(__always)
    func sent(_ count: Int) { cwharf_counter_add(words + 1, UInt64(truncatingIfNeeded: count)) }

    /// The same words in the relay pump's region (the next one): what the pump thread writes.
    func inPumpRegion(regionWords: Int) -> ByteMeter { ByteMeter(words: words + regionWords) }
}

/// The worker's counters as its threads write them: per listener and event loop, the block
/// to count into; per loop, its own block.
public final class WorkerMetrics: Sendable {
    public let segment: MetricsSegment

    public init(segment: MetricsSegment) {
        self.segment = segment
    }

    /// Listener `index`'s block for event loop `loop` (written by that loop's thread only).
    func listener(_ index: Int, loop: Int) -> CounterBlock {
        segment.listenerBlock(region: MetricsLayout.loopRegion(loop), listener: index)
    }

    func loop(_ loop: Int) -> CounterBlock {
        segment.loopBlock(region: MetricsLayout.loopRegion(loop))
    }

    var regionWords: Int { segment.layout.regionWords }

    func logLinesDropped(_ count: Int) {
        segment.addShared(ProcessField.logLinesDropped, UInt64(count))
    }

    func accessLogLinesDropped(_ count: Int) {
        segment.addShared(ProcessField.accessLogLinesDropped, UInt64(count))
    }
}
