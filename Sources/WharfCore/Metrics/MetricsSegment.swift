import CWharfLinux

/// One worker's counters, in a shared-memory file the supervisor creates, maps, and hands
/// to the worker (its fd 4), as nginx does with its shared zones. The worker writes; the
/// supervisor reads whenever it is scraped, and once more after the worker is gone, so no
/// count is lost when a worker exits or crashes.
///
/// Why not swift-metrics / swift-prometheus: their registries keep values inside one
/// process, behind a lock or an atomic per update; here the values must outlive the
/// process that counted them and be summed over many, and an update must be a plain
/// store by the one thread that owns the word.
public final class MetricsSegment: @unchecked Sendable {
    public let layout: MetricsLayout
    private let memory: SharedMemory
    let words: UnsafeMutablePointer<UInt64>

    private init(layout: MetricsLayout, memory: SharedMemory) {
        self.layout = layout
        self.memory = memory
        self.words = memory.base.assumingMemoryBound(to: UInt64.self)
    }

    /// The shared-memory file; the supervisor passes it to the worker and then closes it.
    public var descriptor: CInt { memory.descriptor }

    /// A zeroed segment for `layout` (the supervisor, before spawning the worker).
    public static func create(_ layout: MetricsLayout) -> MetricsSegment? {
        guard let memory = SharedMemory.create(name: "wharf-metrics", size: layout.byteCount) else { return nil }
        let segment = MetricsSegment(layout: layout, memory: memory)
        segment.words[0] = MetricsLayout.magic
        segment.words[1] = UInt64(layout.listeners.count)
        segment.words[2] = UInt64(layout.loops)
        segment.words[3] = UInt64(layout.regionWords)
        return segment
    }

    /// The worker's side: maps the segment at `descriptor` if it is one for `layout`
    /// (nil otherwise: the worker then serves without metrics rather than misreport).
    public static func attach(_ descriptor: CInt, _ layout: MetricsLayout) -> MetricsSegment? {
        guard let memory = SharedMemory.attach(descriptor, size: layout.byteCount) else { return nil }
        let segment = MetricsSegment(layout: layout, memory: memory)
        let header = (segment.words[0], segment.words[1], segment.words[2], segment.words[3])
        guard header == (MetricsLayout.magic, UInt64(layout.listeners.count), UInt64(layout.loops),
                         UInt64(layout.regionWords)) else { return nil }
        return segment
    }

    /// Memory of the same layout that no other process sees (`--single-process`, tests).
    public static func local(_ layout: MetricsLayout) -> MetricsSegment? {
        guard let segment = create(layout) else { return nil }
        segment.closeDescriptor()
        return segment
    }

    public func closeDescriptor() { memory.closeDescriptor() }

    // MARK: Writers

    /// Listener `index`'s block in the loop's (or its pump's) region.
    func listenerBlock(region: Int, listener index: Int) -> CounterBlock {
        CounterBlock(words + layout.listenerOffset(region: region, listener: index))
    }

    func loopBlock(region: Int) -> CounterBlock {
        CounterBlock(words + layout.loopOffset(region: region))
    }

    /// Process-wide: any thread.
    func addShared(_ field: Int, _ amount: UInt64 = 1) {
        cwharf_counter_add_shared(words + 4 + field, amount)
    }

    // MARK: Readers

    func load(_ offset: Int) -> UInt64 { cwharf_counter_load(words + offset) }

    /// Listener `index`'s block summed over every region.
    func listenerTotals(_ index: Int) -> [UInt64] {
        sumRegions(width: ListenerField.count) { layout.listenerOffset(region: $0, listener: index) }
    }

    /// Loop `loop`'s own block (its lag histogram).
    func loopTotals(_ loop: Int) -> [UInt64] {
        (0..<LoopField.count).map { load(layout.loopOffset(region: MetricsLayout.loopRegion(loop)) + $0) }
    }

    func processTotals() -> [UInt64] {
        (0..<ProcessField.count).map { load(4 + $0) }
    }

    private func sumRegions(width: Int, offset: (Int) -> Int) -> [UInt64] {
        var totals = [UInt64](repeating: 0, count: width)
        for region in 0..<layout.regionCount {
            let base = offset(region)
            for word in 0..<width { totals[word] &+= load(base + word) }
        }
        return totals
    }
}

/// A pointer to one block of counters, written by the one thread that owns it.
struct CounterBlock: @unchecked Sendable {
    let base: UnsafeMutablePointer<UInt64>

    init(_ base: UnsafeMutablePointer<UInt64>) { self.base = base }

    @inline(__always)
    func add(_ field: Int, _ amount: UInt64 = 1) {
        cwharf_counter_add(base + field, amount)
    }

    /// Any thread: the word as last stored (relaxed).
    func load(_ field: Int) -> UInt64 { cwharf_counter_load(base + field) }

    /// Records `micros` into the histogram of `shape` that starts at word `field`.
    func record(_ shape: HistogramShape, at field: Int, micros: UInt64) {
        add(field + shape.bucket(micros: micros))
        add(field + shape.sumWord, micros)
    }
}
