import Synchronization

/// A process-wide counter any thread may draw from.
public final class AtomicCounter: Sendable {
    private let value = Atomic<UInt64>(0)

    public init() {}

    /// 1, 2, 3, ...
    public func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
