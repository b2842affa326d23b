import CWharf
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Everything Wharf keeps per event loop: the table that turns `wharf_stream *` handles
/// into streams, and the dispatcher that runs plugin callbacks.
///
/// The dispatcher is why no callback ever runs inside the call that started it: while
/// plugin code is running (`depth > 0`), completions are queued and run, one after
/// another, once that code returns. A plugin that loops read → callback → read over a
/// thousand pipelined messages therefore iterates; it never recurses.
///
/// All members are confined to `eventLoop` (hence `@unchecked Sendable`: the reference
/// may travel, the state is only touched on its loop), except the global handle registry.
public final class LoopContext: @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let loopIndex: Int
    public let loopCount: Int
    /// This context's entry in `LoopRegistry`: the top bits of every handle it issues.
    private(set) var id: UInt64 = 0

    /// Retained by hand (+1 from register to unregister) so host calls can use a stream
    /// without a retain/release pair each.
    private var streams: [Unmanaged<IOStreamHandler>?] = []
    /// The loop's thread, recorded at the first registration (which runs on the loop):
    /// comparing `pthread_self()` is the cheapest wrong-thread check there is.
    private let loopThread = Atomic<UInt>(0)
    /// Set before the event loop shuts down: posts from other threads then complete on
    /// their own thread with WHARF_E_SHUTDOWN instead of being dropped by NIO.
    private let stopped = Atomic<Bool>(false)
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    public private(set) var liveStreams = 0

    private var streamCounter: UInt64 = 0
    private var depth = 0
    private var deferred: [DeferredWork] = []
    private var deferredHead = 0

    enum DeferredWork {
        case serviceRead(IOStreamHandler)
        case writeDone(IOStreamHandler, wharf_write_cb, UnsafeMutableRawPointer?, Int32)
        case notifyClosed(IOStreamHandler)
        case posted(wharf_post_fn, UnsafeMutableRawPointer?, UInt64)
        /// A one-off completion (connect, relay end): rare enough to be a closure.
        case completion(() -> Void)
    }

    public init(eventLoop: any EventLoop, loopIndex: Int = 0, loopCount: Int = 1) {
        self.eventLoop = eventLoop
        self.loopIndex = loopIndex
        self.loopCount = loopCount
        self.id = LoopRegistry.register(self)
    }

    /// The loop's relay pump, started with the first relay that can use it.
    private var pump: SocketPump?
    private var pumpUnavailable = false

    func socketPump() -> SocketPump? {
        if let pump { return pump }
        guard !pumpUnavailable else { return nil }
        guard let made = SocketPump(name: "wharf-pump-\(loopIndex)"), made.start() else {
            pumpUnavailable = true
            PumpLog.logger.warning("relay pump unavailable; relays run through the event loop")
            return nil
        }
        pump = made
        return made
    }

    /// Stops the pump thread (after every relay has ended).
    func stopPump() {
        let pump = try? eventLoop.submit { () -> SocketPump? in
            defer { self.pump = nil }
            return self.pump
        }.wait()
        pump?.stop()
    }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Called before the loop shuts down; see `stopped`.
    func markStopped() { stopped.store(true, ordering: .releasing) }

    /// Process-unique stream ids without a shared counter: the loop's registry id in the
    /// top bits, a per-loop count below.
    func nextStreamID() -> UInt64 {
        streamCounter += 1
        return id << 48 | streamCounter
    }

    // MARK: Handles

    /// Handle layout: registry id (16 bits) | slot (24 bits) | generation (24 bits). A slot
    /// is reused only with a new generation, so a stale handle never reaches a new stream.
    func register(_ stream: IOStreamHandler) -> OpaquePointer {
        if loopThread.load(ordering: .relaxed) == 0 {
            loopThread.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .releasing)
        }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            streams[slot] = .passRetained(stream)
        } else {
            slot = streams.count
            precondition(slot < 1 << 24, "more than 16M live streams on one loop")
            streams.append(.passRetained(stream))
            generations.append(0)
        }
        generations[slot] = (generations[slot] &+ 1) & 0xFF_FFFF
        if generations[slot] == 0 { generations[slot] = 1 }
        liveStreams += 1
        let bits = id << 48 | UInt64(slot) << 24 | UInt64(generations[slot])
        return OpaquePointer(bitPattern: UInt(bits))!
    }

    func unregister(_ handle: OpaquePointer) {
        let (slot, generation) = Self.slotAndGeneration(handle)
        guard slot < streams.count, generations[slot] == generation, let stream = streams[slot] else { return }
        streams[slot] = nil
        stream.release()
        freeSlots.append(slot)
        liveStreams -= 1
    }

    func stream(for handle: OpaquePointer) -> IOStreamHandler? {
        unmanagedStream(for: handle)?.takeUnretainedValue()
    }

    private func unmanagedStream(for handle: OpaquePointer) -> Unmanaged<IOStreamHandler>? {
        let (slot, generation) = Self.slotAndGeneration(handle)
        guard slot < streams.count, generations[slot] == generation else { return nil }
        return streams[slot]
    }

    /// Every live stream, for shutdown.
    func allStreams() -> [IOStreamHandler] {
        streams.compactMap { $0?.takeUnretainedValue() }
    }

    private var isOnLoopThread: Bool {
        loopThread.load(ordering: .acquiring) == UInt(bitPattern: Int(bitPattern: pthread_self()))
    }

    private static func slotAndGeneration(_ handle: OpaquePointer) -> (Int, UInt32) {
        let bits = UInt64(UInt(bitPattern: handle))
        return (Int(bits >> 24 & 0xFF_FFFF), UInt32(bits & 0xFF_FFFF))
    }

    /// Resolves a handle from C and runs `body` with its stream, without retaining
    /// anything. Dead handles and calls off the stream's loop are error codes, detected
    /// without touching the stream itself.
    static func withStream(_ handle: OpaquePointer?, _ body: (IOStreamHandler) -> Int32) -> Int32 {
        guard let handle else { return WHARF_E_INVALID }
        let registryID = UInt64(UInt(bitPattern: handle)) >> 48
        guard let loop = LoopRegistry.entry(registryID) else { return WHARF_E_CLOSED }
        return loop._withUnsafeGuaranteedRef { loop in
            guard loop.isOnLoopThread else { return WHARF_E_WRONG_THREAD }
            guard let stream = loop.unmanagedStream(for: handle) else { return WHARF_E_CLOSED }
            return stream._withUnsafeGuaranteedRef { stream in loop.hostCall { body(stream) } }
        }
    }

    // MARK: Dispatch

    /// Runs plugin-facing work; completions raised meanwhile run after it, in order.
    func dispatch(_ body: () -> Void) {
        depth += 1
        body()
        depth -= 1
        if depth == 0 { drainDeferred() }
    }

    /// Runs `work` now if no plugin code is running, else right after it returns. Inside a
    /// host call made outside any callback, it waits for the next loop turn instead, so
    /// that call still returns before its completion runs.
    func enqueue(_ work: DeferredWork) {
        if depth > 0 {
            deferred.append(work)
        } else if hostCallsOutsideDispatch > 0 {
            let box = UnsafeTransfer(work)
            eventLoop.execute { self.enqueue(box.value) }
        } else {
            dispatch { run(work) }
        }
    }

    private var hostCallsOutsideDispatch = 0

    /// Wraps every host function: see `enqueue`.
    func hostCall(_ body: () -> Int32) -> Int32 {
        if depth > 0 { return body() }
        hostCallsOutsideDispatch += 1
        defer { hostCallsOutsideDispatch -= 1 }
        return body()
    }

    private func drainDeferred() {
        depth += 1
        while deferredHead < deferred.count {
            let work = deferred[deferredHead]
            deferredHead += 1
            run(work)
        }
        deferred.removeAll(keepingCapacity: deferred.count <= 1024)
        deferredHead = 0
        depth -= 1
    }

    private func run(_ work: DeferredWork) {
        switch work {
        case let .serviceRead(stream):
            stream.serviceRead()
        case let .writeDone(stream, callback, userdata, status):
            callback(userdata, stream.handle, status)
        case let .notifyClosed(stream):
            stream.notifyClosed()
        case let .posted(function, userdata, handleBits):
            let alive = OpaquePointer(bitPattern: UInt(handleBits)).flatMap(stream(for:)) != nil
            function(userdata, alive ? WHARF_OK : WHARF_E_CLOSED)
        case let .completion(body):
            body()
        }
    }
}

/// Maps the top 16 bits of a handle to its loop. Entries are written once, before any
/// handle naming them exists, and never removed, so readers need no lock.
enum LoopRegistry {
    private static let capacity = 1 << 16
    nonisolated(unsafe) private static let entries: UnsafeMutablePointer<Unmanaged<LoopContext>?> = {
        let pointer = UnsafeMutablePointer<Unmanaged<LoopContext>?>.allocate(capacity: capacity)
        pointer.initialize(repeating: nil, count: capacity)
        return pointer
    }()
    private static let nextID = NIOLockedValueBox<UInt64>(1)

    static func register(_ loop: LoopContext) -> UInt64 {
        let id = nextID.withLockedValue { value -> UInt64 in
            precondition(value < UInt64(capacity), "too many event loop contexts")
            defer { value += 1 }
            return value
        }
        entries[Int(id)] = Unmanaged.passRetained(loop)
        return id
    }

    static func entry(_ id: UInt64) -> Unmanaged<LoopContext>? {
        guard id > 0, id < UInt64(capacity) else { return nil }
        return entries[Int(id)]
    }
}

/// Carries loop-confined values through `EventLoop.execute`, which runs on that same loop.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
