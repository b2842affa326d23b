/// Objects named by (slot, generation) pairs, for handles that cross into C: a slot is
/// reused only with a new generation, so a stale handle never reaches a new object.
/// Each entry is retained by hand (+1 from insert to remove) so lookups need no
/// retain/release pair.
struct SlotTable<Element: AnyObject> {
    static var maxSlots: Int { 1 << 22 }
    static var generationMask: UInt32 { 0xFF_FFFF }

    private var entries: [Unmanaged<Element>?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private(set) var count = 0

    mutating func insert(_ element: Element) -> (slot: Int, generation: UInt32) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            entries[slot] = .passRetained(element)
        } else {
            slot = entries.count
            precondition(slot < Self.maxSlots, "more than 4M live handles of one kind on one loop")
            entries.append(.passRetained(element))
            generations.append(0)
        }
        var generation = (generations[slot] &+ 1) & Self.generationMask
        if generation == 0 { generation = 1 }
        generations[slot] = generation
        count += 1
        return (slot, generation)
    }

    /// Releases the entry; false if the pair names nothing live.
    @discardableResult
    mutating func remove(slot: Int, generation: UInt32) -> Bool {
        guard let entry = lookup(slot: slot, generation: generation) else { return false }
        entries[slot] = nil
        entry.release()
        freeSlots.append(slot)
        count -= 1
        return true
    }

    func lookup(slot: Int, generation: UInt32) -> Unmanaged<Element>? {
        guard slot < entries.count, generations[slot] == generation else { return nil }
        return entries[slot]
    }
}
