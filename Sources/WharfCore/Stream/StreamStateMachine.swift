import NIOCore

/// One stream's whole life as a plain value: the preamble, reads, the close, relays, TLS
/// upgrades and every deadline. Each event is one `mutating` method that returns what to do;
/// `IOStreamHandler` carries that out on NIO and never decides anything itself. The machine
/// performs no I/O and reads no clock (times come in as `now`), so every path is testable as
/// a value.
///
///     starting ──preamble done──► open ──close──► closing ──channel gone──► closed ──► finished
///         │                        │ ▲                                      ▲
///         └──failed / silent───────┼─┼──────────────(abandoned)             │
///                                  ▼ │ start_tls                            │
///                               relayed (channel, or pump: hand-off → pumped)┘
struct StreamStateMachine {
    private(set) var state: State
    private(set) var reads: ReadBuffer
    private(set) var deadlines: StreamDeadlines
    private(set) var outputShutDown = false
    /// A start_tls waiting for its handshake.
    private(set) var tlsUpgrade: CompletionToken?
    /// Mirrors the channel's writability, so demand checks need not ask the channel.
    private(set) var writable = true
    /// The gateway is draining: close as soon as the stream is idle.
    private(set) var draining = false
    /// A `read()` was issued and NIO has not delivered since: asking again changes nothing.
    private var socketReadRequested = false
    /// A read evaluation is queued: another would find nothing new.
    private var serviceQueued = false
    /// Why a stream that never opened ends.
    private(set) var abandonReason: StreamError?
    /// A read the owner put a deadline on timed out: whatever the peer was about to send
    /// is unaccounted for, so the stream is never pooled again.
    private(set) var readTimedOut = false
    /// Closed while a channel relay held it: the relay still hears when the channel goes,
    /// so the partner is closed too (and learns of a reset).
    private var closedUnderRelay = false

    init(awaiting: Preamble, maxBufferSize: Int, timeouts: StreamTimeouts, now: NIODeadline) {
        state = .starting(awaiting: awaiting)
        reads = ReadBuffer(maxBufferSize: maxBufferSize)
        deadlines = StreamDeadlines(timeouts: timeouts, now: now)
    }

    var closeReason: StreamError? { reads.closeReason }
    var isRelayed: Bool { if case .relayed = state { true } else { false } }

    // MARK: Opening

    /// The channel is active.
    mutating func activate(now: NIODeadline) -> ActivateAction {
        guard case let .starting(awaiting) = state, deadlines.handshake == nil, abandonReason == nil else {
            return .none
        }
        if awaiting.isEmpty { return open(now: now) ? .open : .none }
        deadlines.handshake = now + deadlines.timeouts.handshake
        return .readPreamble
    }

    /// One preamble step finished; true when the stream opens now. A PROXY header is the
    /// decoder's: the read that brought it answered the stream's request though no byte
    /// reached the stream, so the stream may ask again (it once waited, until the handshake
    /// deadline, for a TLS handshake whose bytes it never asked for).
    mutating func preambleStepDone(_ step: Preamble, now: NIODeadline) -> Bool {
        if step == .proxyHeader { socketReadRequested = false }
        guard case var .starting(awaiting) = state, abandonReason == nil else { return false }
        awaiting.remove(step)
        state = .starting(awaiting: awaiting)
        return awaiting.isEmpty && open(now: now)
    }

    private mutating func open(now: NIODeadline) -> Bool {
        guard case .starting = state else { return false }
        state = .open
        deadlines.opened(now: now)
        return true
    }

    /// The preamble failed; true if the channel should close now (the first failure wins).
    mutating func preambleFailed(_ reason: StreamError) -> Bool {
        guard case .starting = state, abandonReason == nil else { return false }
        abandonReason = reason
        return true
    }

    // MARK: Socket events

    mutating func received(_ chunk: ByteBuffer, now: NIODeadline) -> InboundAction {
        socketReadRequested = false
        deadlines.activity(now: now)
        switch state {
        case .starting, .relayed(.pumpHandoff), .relayed(.pumped):
            // The end of the preamble's packet, or bytes read before the hand-over (they
            // go to the pump first): keep them.
            reads.receive(chunk)
            return .none
        case .relayed(.channel):
            return .forwardToRelay(chunk)
        case .open, .closing:
            reads.receive(chunk)
            return queueService()
        case .closed, .finished:
            return .none
        }
    }

    /// One socket read is over: release a mostly empty receive buffer's spare room.
    mutating func readComplete() {
        if state == .open || state == .closing { reads.compactIfWasteful() }
    }

    mutating func inputClosed() -> InboundAction {
        socketReadRequested = false
        switch state {
        case .starting:
            return preambleFailed(.closed) ? .abandon : .none
        case .open, .closing:
            reads.endOfInput()
            return queueService()
        case .relayed(.channel):
            reads.endOfInput()
            return .forwardEndToRelay
        case .relayed:
            reads.endOfInput() // goes to the pump with the socket
            return .none
        case .closed, .finished:
            return .none
        }
    }

    mutating func errorCaught(_ reason: StreamError) -> ErrorAction {
        if case .starting = state { return preambleFailed(reason) ? .abandon : .none }
        return .close(reason, failingUpgrade: takeUpgrade())
    }

    /// Bytes moved without an event of their own (a relay sending through this stream).
    mutating func noteActivity(now: NIODeadline) {
        deadlines.activity(now: now)
    }

    mutating func writabilityChanged(_ writable: Bool, now: NIODeadline) {
        self.writable = writable
        deadlines.activity(now: now) // a backed-up output drained: bytes moved
    }

    mutating func channelInactive() -> InactiveAction {
        switch state {
        case .starting:
            state = .finished
            deadlines.clearAll()
            return .abandoned(abandonReason ?? .closed)
        case .open, .closing, .relayed(.channel), .relayed(.pumpHandoff):
            let tellRelay = isRelayed || closedUnderRelay
            state = .closed
            reads.closeReads(reason: nil)
            deadlines.clearAll()
            return .closed(serviceRead: reads.hasPendingRead, failingUpgrade: takeUpgrade(), tellRelay: tellRelay)
        case .relayed(.pumped), .closed, .finished:
            return .none // the pump closed our copy of the socket; it reports the end itself
        }
    }

    // MARK: Reads

    mutating func startRead(_ request: ReadRequest, token: CompletionToken, now: NIODeadline) -> StreamError? {
        if isRelayed { return .relayed }
        switch reads.startRead(request, token: token) {
        case let .rejected(error):
            return error == .busy || state == .open ? error : .closed
        case .started:
            deadlines.readStarted(now: now)
            return nil
        }
    }

    /// A read was started: evaluate it after the caller's code returns, unless nothing here
    /// could decide it yet (nothing buffered, input open, not closing, a request that an
    /// empty buffer cannot complete). Then it just waits for bytes: in a ping-pong the next
    /// message is not here yet, and that saves a whole evaluation per message.
    mutating func readStartedAction() -> InboundAction {
        if reads.bufferedBytes == 0, !reads.inputEnded, !reads.readsClosed, reads.pendingNeedsBytes { return .none }
        return queueService()
    }

    private mutating func queueService() -> InboundAction {
        guard reads.hasPendingRead, !serviceQueued else { return .none }
        serviceQueued = true
        return .serviceRead
    }

    mutating func serviceRead(now: NIODeadline) -> ServiceAction {
        serviceQueued = false
        switch reads.next() {
        case let .deliver(bytes, token):
            deadlines.readEnded()
            return .deliver(bytes, token)
        case let .fail(error, token):
            deadlines.readEnded()
            let closeReason: StreamError? = error == .limitExceeded || error == .bufferFull ? error : nil
            return .fail(error, token, closeReason: closeReason)
        case .waitForData:
            if reads.hasPendingRead { deadlines.readWaiting(buffered: reads.bufferedBytes, now: now) }
            return .none
        }
    }

    /// Whether to ask the socket for data now; records the request. `partnerWritable` is
    /// the channel relay partner's writability (relayed streams read only while it can take
    /// what they read).
    mutating func shouldRequestSocketRead(partnerWritable: Bool) -> Bool {
        guard !socketReadRequested else { return false }
        let wanted: Bool
        switch state {
        case let .starting(awaiting): wanted = !awaiting.isEmpty && abandonReason == nil
        case .open: wanted = tlsUpgrade != nil || (writable && reads.wantsSocketRead)
        case .relayed(.channel): wanted = !reads.inputEnded && partnerWritable
        default: wanted = false
        }
        if wanted { socketReadRequested = true }
        return wanted
    }

    // MARK: Writes and closing

    mutating func write(now: NIODeadline) -> StreamError? {
        if isRelayed { return .relayed }
        guard state == .open, !outputShutDown else { return .closed }
        deadlines.activity(now: now)
        return nil
    }

    /// `resetPeer`: end with RST even though the reason is an error (a relay passing its
    /// partner's reset on); otherwise only an abort with no reason (the plugin's) resets.
    mutating func close(reason: StreamError?, graceful: Bool, resetPeer: Bool = false, now: NIODeadline) -> CloseAction {
        switch state {
        case .relayed(.pumpHandoff), .relayed(.pumped):
            return .forwardToRelay
        case .starting:
            _ = preambleFailed(reason ?? .closed)
            return .closeNow(reset: false, serviceRead: false)
        case .open, .relayed(.channel):
            if state == .relayed(.channel) { closedUnderRelay = true }
            state = .closing
            reads.closeReads(reason: reason)
            deadlines.stopGuarding()
            let serviceRead = reads.hasPendingRead && !serviceQueued
            if serviceRead { serviceQueued = true }
            if graceful {
                deadlines.closeLinger = now + deadlines.timeouts.closeLinger
                return .closeWhenFlushed(serviceRead: serviceRead)
            }
            // A plugin's abort resets the peer; after a socket error there is nothing to reset.
            return .closeNow(reset: reason == nil || resetPeer, serviceRead: serviceRead)
        case .closing:
            return graceful ? .none : .closeNow(reset: resetPeer, serviceRead: false)
        case .closed, .finished:
            return .none
        }
    }

    /// Half-close: nil if the output may be shut once pending writes are out.
    mutating func shutdownOutput() -> StreamError? {
        if isRelayed { return .relayed }
        guard state == .open, !outputShutDown else { return .closed }
        outputShutDown = true
        return nil
    }

    /// The channel relay shuts a side's output when its partner's peer sent FIN.
    mutating func relayShutdownOutput() -> Bool {
        guard state == .relayed(.channel), !outputShutDown else { return false }
        outputShutDown = true
        return true
    }

    // MARK: Draining

    /// Waiting for the start of a message with nothing to send: safe to close at once.
    var isIdle: Bool {
        state == .open && reads.hasPendingRead && reads.bufferedBytes == 0 && writable && tlsUpgrade == nil
    }

    /// The gateway stops: from now on the stream closes itself whenever it is idle.
    mutating func quiesce() { draining = true }

    var shouldCloseForDrain: Bool { draining && isIdle }

    // MARK: Timers

    /// The stream's timer fired. Act on the result and call again until `.none`.
    mutating func timerFired(now: NIODeadline) -> TimerAction {
        guard let expiry = deadlines.expired(now: now) else { return .none }
        switch expiry {
        case .closeLinger:
            deadlines.closeLinger = nil
            reads.closeUncleanly(reason: .timedOut)
            return .close(.timedOut, graceful: false, failingUpgrade: nil)
        case .handshake:
            deadlines.handshake = nil
            if case .starting = state { return preambleFailed(.timedOut) ? .abandon : .none }
            return .close(.timedOut, graceful: false, failingUpgrade: takeUpgrade())
        case .lifetime:
            return .close(.lifetimeExceeded, graceful: true, failingUpgrade: takeUpgrade())
        case .idle:
            return .close(.idleTimeout, graceful: true, failingUpgrade: takeUpgrade())
        case .read:
            return .close(.readTimeout, graceful: true, failingUpgrade: nil)
        case .pluginRead:
            deadlines.readEnded()
            readTimedOut = true
            guard let token = reads.cancelPending() else { return .none }
            return .failRead(token)
        }
    }

    var nextDeadline: NIODeadline? { deadlines.next }

    /// The plugin's limit on each read (nil: none), from the next read on.
    mutating func setReadTimeout(_ timeout: TimeAmount?) -> StreamError? {
        guard state == .open || isRelayed else { return .closed }
        deadlines.pluginReadTimeout = timeout
        return nil
    }

    // MARK: Pooling

    /// Takes the pending read away unresolved; what was buffered stays for the next read.
    mutating func withdrawRead() -> CompletionToken? {
        deadlines.readEnded()
        return reads.cancelPending()
    }

    // MARK: Relays

    /// From open, or (the pump could not take the socket) from a hand-over to the channel
    /// relay. The listener's limits stay watched until the socket leaves (`detachForPump`).
    mutating func attachRelay(_ mode: RelayMode) {
        state = .relayed(mode)
    }

    /// What the stream had buffered, for the channel relay taking it over.
    mutating func takeBufferedForRelay() -> ByteBuffer? { reads.takeAllBuffered() }

    /// The socket goes to the pump: what was read and not delivered goes with it.
    mutating func detachForPump() -> (buffered: ByteBuffer?, inputEnded: Bool) {
        state = .relayed(.pumped)
        deadlines.clearAll()
        return (reads.takeAllBuffered(), reads.inputEnded)
    }

    /// The pump ended the relay and closed the socket: true to queue the close notification.
    mutating func pumpEnded(reason: StreamError?) -> Bool {
        guard state == .relayed(.pumped) else { return false }
        state = .closed
        reads.closeReads(reason: reason)
        return true
    }

    /// A hand-over to the pump that did not happen: the stream is open again.
    mutating func relayReleased() {
        if state == .relayed(.pumpHandoff) { state = .open }
    }

    var isPumpable: Bool { tlsUpgrade == nil && !outputShutDown }

    // MARK: TLS

    /// start_tls: the stream must be idle (nothing pending, buffered or unsent).
    mutating func startTLS(token: CompletionToken, hasUnsentWrites: Bool, now: NIODeadline) -> StreamError? {
        if isRelayed { return .relayed }
        guard state == .open else { return .closed }
        guard tlsUpgrade == nil, !reads.hasPendingRead, reads.bufferedBytes == 0, !hasUnsentWrites,
              !outputShutDown, !reads.inputEnded else { return .notIdle }
        tlsUpgrade = token
        deadlines.handshake = now + deadlines.timeouts.handshake
        return nil
    }

    /// The upgrade could not begin after all (no TLS to offer, bad options).
    mutating func upgradeRefused() {
        tlsUpgrade = nil
        deadlines.handshake = nil
    }

    mutating func tlsHandshakeCompleted(now: NIODeadline) -> HandshakeAction {
        if case .starting = state { return preambleStepDone(.tlsHandshake, now: now) ? .open : .none }
        guard let token = takeUpgrade() else { return .none }
        deadlines.handshake = nil
        return .upgraded(token)
    }

    private mutating func takeUpgrade() -> CompletionToken? {
        defer { tlsUpgrade = nil }
        return tlsUpgrade
    }

    // MARK: The end

    /// The close notification runs now: the reason, and a read left pending (never, in
    /// practice: the read is resolved first; kept as a guarantee).
    mutating func finish() -> (reason: StreamError?, leftoverRead: CompletionToken?)? {
        guard state == .closed else { return nil }
        state = .finished
        return (reads.closeReason, reads.cancelPending())
    }
}
