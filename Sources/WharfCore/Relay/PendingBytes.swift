#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Bytes read from one socket that its partner could not take yet. They exist only while a
/// partner is backed up, so an idle pair holds no buffer memory.
struct PendingBytes {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var start = 0
    private var end = 0

    var isEmpty: Bool { start == end }
    var count: Int { end - start }
    var bytes: UnsafeRawPointer? { storage.map { UnsafeRawPointer($0 + start) } }

    mutating func append(_ source: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        if end + count > capacity {
            let kept = self.count
            let needed = kept + count
            if needed > capacity {
                let grown = UnsafeMutableRawPointer.allocate(byteCount: needed, alignment: 16)
                if let storage { grown.copyMemory(from: storage + start, byteCount: kept) }
                storage?.deallocate()
                storage = grown
                capacity = needed
            } else if let storage {
                storage.copyMemory(from: storage + start, byteCount: kept)
            }
            start = 0
            end = kept
        }
        (storage! + end).copyMemory(from: source, byteCount: count)
        end += count
    }

    mutating func consume(_ count: Int) {
        start += count
        if start == end { release() }
    }

    mutating func release() {
        storage?.deallocate()
        storage = nil
        capacity = 0
        start = 0
        end = 0
    }
}
