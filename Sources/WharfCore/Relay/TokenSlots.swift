/// The slots behind a relay pump's epoll tokens (pairs, handshakes): a freed slot is reused,
/// each time with the next generation, which the token carries too, so an event still queued
/// for an ended occupant never reaches the next one. Pump thread only.
struct TokenSlots<Element: AnyObject> {
    private(set) var elements: [Element?] = []
    private var free: [Int] = []
    private var nextGeneration: UInt64 = 0

    /// Places `element`; returns its slot and generation.
    mutating func insert(_ element: Element) -> (slot: Int, generation: UInt64) {
        let slot = free.popLast() ?? elements.count
        if slot == elements.count { elements.append(nil) }
        elements[slot] = element
        let generation = nextGeneration
        nextGeneration = (nextGeneration + 1) & PumpedPair.generationMask
        return (slot, generation)
    }

    /// Empties the slot; it is reused only after `reuse` (see `SocketPump.endReportingTurn`).
    mutating func vacate(_ slot: Int) { elements[slot] = nil }

    mutating func reuse(_ slots: [Int]) { free.append(contentsOf: slots) }

    /// Empties the slot for reuse at once.
    mutating func remove(_ slot: Int) {
        elements[slot] = nil
        free.append(slot)
    }

    subscript(slot: Int) -> Element? { slot < elements.count ? elements[slot] : nil }
}
