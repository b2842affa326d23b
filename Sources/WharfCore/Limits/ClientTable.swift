import CWharfLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One listener's per-client state, shared by every worker process of every generation (like
/// nginx's `limit_conn` zone): for each client address, its open connections and a token
/// bucket of new connections. A fixed number of entries in shared memory, so a flood of
/// distinct addresses cannot grow it: an entry with no open connection is evicted (the least
/// recently seen nearby) to make room; if every candidate holds connections, the newcomer is
/// admitted untracked (and the listener logs it).
///
/// Open connections are counted per *lane*, one lane per live worker process: when a worker
/// dies, the supervisor zeroes its lane, so a crash cannot leave clients counted forever.
/// A process-shared robust mutex guards the table; it is held for one lookup, never across
/// I/O.
public final class ClientTable: @unchecked Sendable {
    static let lanes = 64
    /// Entries probed from a key's home slot before one is evicted.
    static let probeWindow = 16

    private enum Entry {
        static let key = 0 // 16 bytes: the address (IPv4 as 12 zero bytes and 4)
        static let used = 16 // UInt32: 0 free, 4 or 6 in use
        static let tokens = 20 // Float32
        static let refilled = 24 // UInt64 ms: tokens last topped up; also "last seen"
        static let counts = 32 // UInt16 × lanes
        static let size = 32 + 2 * ClientTable.lanes
    }

    private enum Header {
        static let magic = 0 // UInt64
        static let capacity = 8 // UInt64
        static let evictions = 16 // UInt64
        static let mutex = 64
        static let size = 128
    }

    private static let magicValue: UInt64 = 0x5748_4152_4643_3031 // "WHARFC01"

    let capacity: Int
    private let memory: SharedMemory
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    static func byteCount(capacity: Int) -> Int { Header.size + capacity * Entry.size }

    private init(memory: SharedMemory, capacity: Int) {
        self.memory = memory
        self.capacity = capacity
        mutex = (memory.base + Header.mutex).assumingMemoryBound(to: pthread_mutex_t.self)
    }

    var descriptor: CInt { memory.descriptor }
    func closeDescriptor() { memory.closeDescriptor() }

    /// A new, empty table (the supervisor).
    static func create(capacity: Int) -> ClientTable? {
        precondition(MemoryLayout<pthread_mutex_t>.size <= Header.size - Header.mutex)
        guard let memory = SharedMemory.create(name: "wharf-clients", size: byteCount(capacity: capacity)) else { return nil }
        let table = ClientTable(memory: memory, capacity: capacity)
        guard cwharf_shared_mutex_init(table.mutex) == 0 else { return nil }
        memory.base.storeBytes(of: UInt64(capacity), toByteOffset: Header.capacity, as: UInt64.self)
        memory.base.storeBytes(of: magicValue, toByteOffset: Header.magic, as: UInt64.self)
        return table
    }

    /// The worker's side: a table handed over at spawn, if it is one of `capacity` entries.
    static func attach(_ descriptor: CInt, capacity: Int) -> ClientTable? {
        guard let memory = SharedMemory.attach(descriptor, size: byteCount(capacity: capacity)),
              memory.base.load(fromByteOffset: Header.magic, as: UInt64.self) == magicValue,
              memory.base.load(fromByteOffset: Header.capacity, as: UInt64.self) == UInt64(capacity) else { return nil }
        return ClientTable(memory: memory, capacity: capacity)
    }

    /// A table no other process sees (`--single-process`).
    static func local(capacity: Int) -> ClientTable? {
        let table = create(capacity: capacity)
        table?.closeDescriptor()
        return table
    }

    // MARK: Admission

    enum Admission: Equatable {
        /// Counted in the client's entry: `release` it when the connection ends.
        case admitted
        /// The table was full of clients with open connections: not counted.
        case untracked
        case overConnections
        case overRate
    }

    /// Takes a new connection from `key` on `lane`, within `limits`.
    func admit(_ key: ClientKey, lane: Int, limits: ClientLimits, now: UInt64) -> Admission {
        lock()
        defer { unlock() }
        guard let (entry, isNew) = find(key, now: now, insert: true) else {
            return .untracked
        }
        if limits.connectionsPerSecond > 0 {
            let burst = Float(limits.burst)
            let last = entry.load(fromByteOffset: Entry.refilled, as: UInt64.self)
            // A client not seen (or evicted) starts with a full bucket.
            var tokens = isNew ? burst : entry.load(fromByteOffset: Entry.tokens, as: Float.self)
            tokens = min(burst, tokens + Float(now &- last) / 1000 * Float(limits.connectionsPerSecond))
            entry.storeBytes(of: now, toByteOffset: Entry.refilled, as: UInt64.self)
            guard tokens >= 1 else {
                entry.storeBytes(of: tokens, toByteOffset: Entry.tokens, as: Float.self)
                return .overRate
            }
            tokens -= 1
            entry.storeBytes(of: tokens, toByteOffset: Entry.tokens, as: Float.self)
        } else {
            entry.storeBytes(of: now, toByteOffset: Entry.refilled, as: UInt64.self)
        }
        if limits.maxConnections > 0, openConnections(entry) >= limits.maxConnections { return .overConnections }
        guard lane >= 0, lane < Self.lanes else { return .untracked }
        let count = entry + Entry.counts + 2 * lane
        count.storeBytes(of: count.load(as: UInt16.self) &+ 1, as: UInt16.self)
        return .admitted
    }

    /// An admitted connection from `key` ended.
    func release(_ key: ClientKey, lane: Int) {
        lock()
        defer { unlock() }
        guard lane >= 0, lane < Self.lanes, let (entry, _) = find(key, now: 0, insert: false) else { return }
        let count = entry + Entry.counts + 2 * lane
        let value = count.load(as: UInt16.self)
        if value > 0 { count.storeBytes(of: value - 1, as: UInt16.self) }
    }

    /// A worker process is gone: whatever it still counted is no longer open.
    func clearLane(_ lane: Int) {
        guard lane >= 0, lane < Self.lanes else { return }
        lock()
        defer { unlock() }
        for index in 0..<capacity {
            (entry(index) + Entry.counts + 2 * lane).storeBytes(of: UInt16(0), as: UInt16.self)
        }
    }

    /// Open connections of `key` over all lanes (tests, status).
    func openConnections(of key: ClientKey) -> Int {
        lock()
        defer { unlock() }
        return find(key, now: 0, insert: false).map { openConnections($0.entry) } ?? 0
    }

    var evictions: UInt64 { memory.base.load(fromByteOffset: Header.evictions, as: UInt64.self) }

    // MARK: The table

    private func lock() { cwharf_shared_mutex_lock(mutex) }
    private func unlock() { cwharf_shared_mutex_unlock(mutex) }

    private func entry(_ index: Int) -> UnsafeMutableRawPointer {
        memory.base + Header.size + index * Entry.size
    }

    private func add(_ offset: Int) {
        let value = memory.base.load(fromByteOffset: offset, as: UInt64.self)
        memory.base.storeBytes(of: value &+ 1, toByteOffset: offset, as: UInt64.self)
    }

    private func openConnections(_ entry: UnsafeMutableRawPointer) -> Int {
        var total = 0
        for lane in 0..<Self.lanes { total += Int(entry.load(fromByteOffset: Entry.counts + 2 * lane, as: UInt16.self)) }
        return total
    }

    /// The key's entry; with `insert`, a new one in a free slot of its probe window, or in
    /// the least recently seen entry there without open connections.
    private func find(_ key: ClientKey, now: UInt64, insert: Bool) -> (entry: UnsafeMutableRawPointer, isNew: Bool)? {
        let home = Int(key.hash % UInt64(capacity))
        var free: UnsafeMutableRawPointer?
        var victim: (entry: UnsafeMutableRawPointer, seen: UInt64)?
        for step in 0..<min(Self.probeWindow, capacity) {
            let candidate = entry((home + step) % capacity)
            let used = candidate.load(fromByteOffset: Entry.used, as: UInt32.self)
            if used == 0 {
                if free == nil { free = candidate }
                continue
            }
            if used == key.family, key.matches(candidate) { return (candidate, false) }
            guard insert, openConnections(candidate) == 0 else { continue }
            let seen = candidate.load(fromByteOffset: Entry.refilled, as: UInt64.self)
            if victim == nil || seen < victim!.seen { victim = (candidate, seen) }
        }
        guard insert, let slot = free ?? victim?.entry else { return nil }
        if free == nil { add(Header.evictions) }
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: Entry.size)
        key.store(in: slot)
        slot.storeBytes(of: key.family, toByteOffset: Entry.used, as: UInt32.self)
        slot.storeBytes(of: now, toByteOffset: Entry.refilled, as: UInt64.self)
        return (slot, true)
    }
}

/// A client address as the table keys it: 16 bytes (IPv4 in the last four) and its family.
struct ClientKey: Equatable, Sendable {
    let high: UInt64
    let low: UInt64
    /// 4 or 6.
    let family: UInt32

    init?(_ address: SocketAddress?) {
        guard let address, var bytes = AccessList.bytes(of: address) else { return nil }
        let mappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
        if bytes.count == 16, Array(bytes[0..<12]) == mappedPrefix { bytes = Array(bytes[12...]) } // a dual-stack IPv4 client
        family = bytes.count == 4 ? 4 : 6
        let padded = [UInt8](repeating: 0, count: 16 - bytes.count) + bytes
        high = padded[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = padded[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    var hash: UInt64 {
        var value = (high ^ low.rotateLeft(29)) &* 0x9E37_79B9_7F4A_7C15
        value ^= value >> 32
        return value
    }

    func matches(_ entry: UnsafeMutableRawPointer) -> Bool {
        entry.load(as: UInt64.self) == high && entry.load(fromByteOffset: 8, as: UInt64.self) == low
    }

    func store(in entry: UnsafeMutableRawPointer) {
        entry.storeBytes(of: high, as: UInt64.self)
        entry.storeBytes(of: low, toByteOffset: 8, as: UInt64.self)
    }
}

extension UInt64 {
    fileprivate func rotateLeft(_ count: UInt64) -> UInt64 { self << count | self >> (64 - count) }
}

/// A listener's `per_client` limits.
public struct ClientLimits: Sendable, Equatable {
    /// Open connections per client address (0: no limit).
    public var maxConnections = 0
    /// New connections per second per client address (0: no limit), with `burst` at once.
    public var connectionsPerSecond = 0
    public var burst = 0
    /// Client addresses tracked at once.
    public var tableSize = 16384

    public var isEnabled: Bool { maxConnections > 0 || connectionsPerSecond > 0 }
}
