import NIOCore

/// What Wharf keeps per event loop, by role: the loop and its place among the others, the
/// callback dispatcher (and the loop clock), stream ids, the relay pump, the deadline wheel,
/// and the streams alive on it (for the drain). Plugin handles live in `PluginLoop`, beside
/// this.
///
/// Confined to `eventLoop` (hence `@unchecked Sendable`: the reference may travel, the state
/// is only touched on its loop).
public final class LoopContext: @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let loopIndex: Int
    public let loopCount: Int
    let dispatcher: CallbackDispatcher
    let pump: PumpOwner
    /// Every stream deadline on this loop (idle, read, lifetime, handshake, linger).
    let deadlines: DeadlineWheel
    /// Every open stream on this loop, so a drain can reach them.
    private(set) var streams = StreamSet()
    private var streamCounter: UInt64 = 0
    private static let nextLoopID = AtomicCounter()
    /// The distance from a word of this loop's metrics region to the same word of its pump's.
    var metricsRegionWords = 0
    /// Unique per process: the top bits of this loop's stream ids.
    private let loopID: UInt64
    /// Where outgoing streams go instead of the network (the plugin test kit); nil: the network.
    var dialer: (any UpstreamDialer)?
    /// `connect_relay`'s upstream addresses, parsed once.
    var upstreamAddresses = UpstreamAddressCache()

    /// `wheelAlarm`: what wakes the deadline wheel (the daemon wants `.dispatchTimer`).
    public init(eventLoop: any EventLoop, loopIndex: Int = 0, loopCount: Int = 1,
                wheelAlarm: WheelAlarmKind = .eventLoopTask) {
        self.eventLoop = eventLoop
        self.loopIndex = loopIndex
        self.loopCount = loopCount
        self.dispatcher = CallbackDispatcher(eventLoop: eventLoop)
        self.pump = PumpOwner(name: "wharf-pump-\(loopIndex)", eventLoop: eventLoop)
        self.deadlines = DeadlineWheel(eventLoop: eventLoop, alarm: wheelAlarm)
        self.loopID = Self.nextLoopID.next()
    }

    /// Process-unique stream ids without a shared counter: the loop's id in the top bits, a
    /// per-loop count below.
    func nextStreamID() -> UInt64 {
        streamCounter += 1
        return loopID << 48 | streamCounter
    }

    func dispatch(at time: NIODeadline? = nil, _ body: () -> Void) { dispatcher.dispatch(at: time, body) }
    /// The loop's clock (see `CallbackDispatcher.now`): what every stream deadline uses.
    var now: NIODeadline { dispatcher.now }
    func enqueue(_ work: CallbackDispatcher.Work) { dispatcher.enqueue(work) }

    func streamOpened(_ stream: IOStreamHandler) { streams.insert(stream) }
    func streamFinished(_ stream: IOStreamHandler) { streams.remove(stream) }
    /// Calls `body` once no stream is open on this loop (at once if none is).
    func whenNoStreams(_ body: @escaping () -> Void) { streams.whenEmpty(body) }
}
