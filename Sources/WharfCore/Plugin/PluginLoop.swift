import CWharf
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The plugin side of one event loop: the tables that turn `wharf_stream *`, `wharf_timer *`,
/// `wharf_pool *` and `wharf_loop *` handles into objects, and the check that a host call
/// runs on the loop.
///
/// Handle layout: registry id (16 bits) | kind (2 bits) | slot (22 bits) | generation (24
/// bits). A dead or stale handle, or a handle of another kind, resolves to nothing.
///
/// Confined to its loop (hence `@unchecked Sendable`), except the atomics.
final class PluginLoop: @unchecked Sendable {
    let loop: LoopContext
    /// The loop's dispatcher, held directly: every host call goes through it.
    private let dispatcher: CallbackDispatcher
    /// This loop's entry in `PluginLoopRegistry`: the top bits of every handle it issues.
    private(set) var registryID: UInt64 = 0
    private var streams = SlotTable<PluginStream>()
    private var timers = SlotTable<PluginTimer>()
    private var pools = SlotTable<PluginPool>()
    private var seats = SlotTable<LoopSeat>()
    /// The loop's thread, recorded at the first registration (which runs on the loop):
    /// comparing `pthread_self()` is the cheapest wrong-thread check there is.
    private let loopThread = Atomic<UInt>(0)
    /// Set before the event loop shuts down: posts from other threads then complete on
    /// their own thread with WHARF_E_SHUTDOWN instead of being dropped by NIO.
    private let stopped = Atomic<Bool>(false)

    private enum Kind: UInt64 { case stream = 0, timer = 1, pool = 2, seat = 3 }

    init(loop: LoopContext) {
        self.loop = loop
        self.dispatcher = loop.dispatcher
        self.registryID = PluginLoopRegistry.register(self)
    }

    var liveStreams: Int { streams.count }
    var isStopped: Bool { stopped.load(ordering: .acquiring) }
    /// Called before the loop shuts down; see `stopped`.
    func markStopped() { stopped.store(true, ordering: .releasing) }

    // MARK: Handles

    func register(_ stream: PluginStream) -> OpaquePointer {
        noteLoopThread()
        return handle(.stream, streams.insert(stream))
    }

    func unregister(_ stream: OpaquePointer) { remove(stream, from: &streams) }

    func register(_ timer: PluginTimer) -> OpaquePointer {
        handle(.timer, timers.insert(timer))
    }

    func unregister(timer: OpaquePointer) { remove(timer, from: &timers) }

    func register(_ pool: PluginPool) -> OpaquePointer {
        handle(.pool, pools.insert(pool))
    }

    func unregister(pool: OpaquePointer) { remove(pool, from: &pools) }

    func register(_ seat: LoopSeat) -> OpaquePointer {
        handle(.seat, seats.insert(seat))
    }

    func unregister(seat: OpaquePointer) { remove(seat, from: &seats) }

    func stream(for handle: OpaquePointer) -> PluginStream? {
        lookupStream(handle)?.takeUnretainedValue()
    }

    func seat(for handle: OpaquePointer) -> LoopSeat? {
        lookup(handle, .seat, in: seats)?.takeUnretainedValue()
    }

    /// Releases the handle's entry (a stale handle removes nothing).
    private func remove<Element>(_ handle: OpaquePointer, from table: inout SlotTable<Element>) {
        let (slot, generation) = Self.slotAndGeneration(handle)
        table.remove(slot: slot, generation: generation)
    }

    private func handle(_ kind: Kind, _ entry: (slot: Int, generation: UInt32)) -> OpaquePointer {
        let bits = registryID << 48 | kind.rawValue << 46 | UInt64(entry.slot) << 24 | UInt64(entry.generation)
        return OpaquePointer(bitPattern: UInt(bits))!
    }

    /// On every host call: reads the stream table in place (a generic lookup taking the table
    /// as an argument copied it: a retain and release per array, ~290 instructions a round trip,
    /// measured with bench/instructions.py).
    private func lookupStream(_ handle: OpaquePointer) -> Unmanaged<PluginStream>? {
        guard Self.isKind(.stream, handle) else { return nil }
        let (slot, generation) = Self.slotAndGeneration(handle)
        return streams.lookup(slot: slot, generation: generation)
    }

    private func lookup<Element>(_ handle: OpaquePointer, _ kind: Kind,
                                 in table: SlotTable<Element>) -> Unmanaged<Element>? {
        guard Self.isKind(kind, handle) else { return nil }
        let (slot, generation) = Self.slotAndGeneration(handle)
        return table.lookup(slot: slot, generation: generation)
    }

    private static func isKind(_ kind: Kind, _ handle: OpaquePointer) -> Bool {
        UInt64(UInt(bitPattern: handle)) >> 46 & 3 == kind.rawValue
    }

    private static func slotAndGeneration(_ handle: OpaquePointer) -> (Int, UInt32) {
        let bits = UInt64(UInt(bitPattern: handle))
        return (Int(bits >> 24 & 0x3F_FFFF), UInt32(bits & 0xFF_FFFF))
    }

    private func noteLoopThread() {
        if loopThread.load(ordering: .relaxed) == 0 {
            loopThread.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .releasing)
        }
    }

    /// Whether the caller runs on this loop. Before any stream has been registered (a
    /// plugin's loop-level work can come first) the loop is asked once.
    var isOnLoopThread: Bool {
        let recorded = loopThread.load(ordering: .acquiring)
        if recorded != 0 { return recorded == UInt(bitPattern: Int(bitPattern: pthread_self())) }
        guard loop.eventLoop.inEventLoop else { return false }
        noteLoopThread()
        return true
    }

    // MARK: Host calls

    /// Resolves a stream handle from C and runs `body` with it inside a host call, without
    /// retaining anything. Dead handles and calls off the stream's loop are error codes,
    /// detected without touching the stream itself.
    static func withStream(_ handle: OpaquePointer?, _ body: (PluginStream) -> Int32) -> Int32 {
        withLoop(of: handle) { pluginLoop, handle in
            guard let stream = pluginLoop.lookupStream(handle) else { return WHARF_E_CLOSED }
            return stream._withUnsafeGuaranteedRef { stream in pluginLoop.dispatcher.hostCall { body(stream) } }
        }
    }

    static func withTimer(_ handle: OpaquePointer?, _ body: (PluginTimer) -> Int32) -> Int32 {
        withLoop(of: handle) { pluginLoop, handle in
            guard let timer = pluginLoop.lookup(handle, .timer, in: pluginLoop.timers)?.takeUnretainedValue() else {
                return WHARF_E_CLOSED
            }
            return pluginLoop.dispatcher.hostCall { body(timer) }
        }
    }

    static func withPool(_ handle: OpaquePointer?, _ body: (PluginPool) -> Int32) -> Int32 {
        withLoop(of: handle) { pluginLoop, handle in
            guard let pool = pluginLoop.lookup(handle, .pool, in: pluginLoop.pools)?.takeUnretainedValue() else {
                return WHARF_E_CLOSED
            }
            return pluginLoop.dispatcher.hostCall { body(pool) }
        }
    }

    /// A `wharf_loop *` on its loop. With `duringInit`, a call from the plugin's init()
    /// (the control thread, while the loop runs) is carried onto the loop and waited for:
    /// the loop's tables are only ever touched there.
    static func withSeat(_ handle: OpaquePointer?, duringInit: Bool = false,
                         _ body: @escaping (LoopSeat) -> Int32) -> Int32 {
        guard let handle else { return WHARF_E_INVALID }
        guard let entry = PluginLoopRegistry.entry(UInt64(UInt(bitPattern: handle)) >> 48) else {
            return WHARF_E_CLOSED
        }
        let pluginLoop = entry.takeUnretainedValue()
        if pluginLoop.isOnLoopThread {
            guard let seat = pluginLoop.seat(for: handle) else { return WHARF_E_CLOSED }
            return pluginLoop.dispatcher.hostCall { body(seat) }
        }
        guard duringInit, !pluginLoop.isStopped else { return WHARF_E_WRONG_THREAD }
        let call = UnsafeTransfer((body, handle))
        let result = try? pluginLoop.loop.eventLoop.submit { () -> Int32 in
            guard let seat = pluginLoop.seat(for: call.value.1) else { return WHARF_E_CLOSED }
            guard seat.isInitializing else { return WHARF_E_WRONG_THREAD }
            return pluginLoop.dispatcher.hostCall { call.value.0(seat) }
        }.wait()
        return result ?? WHARF_E_SHUTDOWN
    }

    private static func withLoop(of handle: OpaquePointer?,
                                 _ body: (PluginLoop, OpaquePointer) -> Int32) -> Int32 {
        guard let handle else { return WHARF_E_INVALID }
        guard let entry = PluginLoopRegistry.entry(UInt64(UInt(bitPattern: handle)) >> 48) else {
            return WHARF_E_CLOSED
        }
        return entry._withUnsafeGuaranteedRef { pluginLoop in
            guard pluginLoop.isOnLoopThread else { return WHARF_E_WRONG_THREAD }
            return body(pluginLoop, handle)
        }
    }
}

/// Maps the top 16 bits of a handle to its loop. Entries are written once, before any
/// handle naming them exists, and never removed, so readers need no lock.
enum PluginLoopRegistry {
    private static let capacity = 1 << 16
    nonisolated(unsafe) private static let entries: UnsafeMutablePointer<Unmanaged<PluginLoop>?> = {
        let pointer = UnsafeMutablePointer<Unmanaged<PluginLoop>?>.allocate(capacity: capacity)
        pointer.initialize(repeating: nil, count: capacity)
        return pointer
    }()
    private static let nextID = NIOLockedValueBox<UInt64>(1)

    static func register(_ loop: PluginLoop) -> UInt64 {
        let id = nextID.withLockedValue { value -> UInt64 in
            precondition(value < UInt64(capacity), "too many event loops")
            defer { value += 1 }
            return value
        }
        entries[Int(id)] = Unmanaged.passRetained(loop)
        return id
    }

    static func entry(_ id: UInt64) -> Unmanaged<PluginLoop>? {
        guard id > 0, id < UInt64(capacity) else { return nil }
        return entries[Int(id)]
    }
}
