import NIOCore

/// The one owner of re-entrancy on an event loop: why no completion ever runs inside the
/// call that started it.
///
/// While owner code runs (`depth > 0`), completions are queued and run, one after another,
/// once that code returns. A plugin that loops read → callback → read over a thousand
/// pipelined messages therefore iterates; it never recurses. A host call made outside any
/// callback (from handle_stream's caller, a posted function) defers its completions to the
/// next loop turn instead, so that call still returns first.
///
/// Confined to its event loop.
final class CallbackDispatcher {
    enum Work {
        case serviceRead(IOStreamHandler)
        case writeDone(IOStreamHandler, CompletionToken, StreamError?)
        case notifyClosed(IOStreamHandler)
        /// A one-off completion (connect, relay end, start_tls, a posted function).
        case completion(() -> Void)
    }

    private let eventLoop: any EventLoop
    private var depth = 0
    private var hostCallsOutsideDispatch = 0
    /// A ring, emptied as it is drained: no index to keep beside it, and no `removeAll`
    /// after each drain.
    private var queue = CircularBuffer<Work>(initialCapacity: 16)
    /// The loop's clock as read when the current dispatch began.
    private var turnStart: NIODeadline
    /// Where each dispatch's duration is recorded (the loop's metrics), if anywhere.
    var durations: CounterBlock?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.turnStart = eventLoop.now
    }

    /// The loop's clock, read once per dispatch: stream deadlines need no finer time, and a
    /// clock read per event would cost more than the event's own bookkeeping. Outside any
    /// dispatch it is read fresh.
    var now: NIODeadline { depth > 0 ? turnStart : eventLoop.now }

    /// Runs owner-facing work; completions raised meanwhile run after it, in order. `time`:
    /// the clock as the caller just read it (saves a second reading), else it is read here.
    func dispatch(at time: NIODeadline? = nil, _ body: () -> Void) {
        if depth == 0 { turnStart = time ?? eventLoop.now }
        depth += 1
        body()
        depth -= 1
        guard depth == 0 else { return }
        drain()
        if let durations {
            let micros = UInt64(max(0, (eventLoop.now - turnStart).nanoseconds) / 1000)
            durations.record(.callbackDuration, at: LoopField.callbacks, micros: micros)
        }
    }

    /// Runs `work` now if no owner code is running, else right after it returns (or on the
    /// next loop turn, inside a host call made outside any callback).
    func enqueue(_ work: Work) {
        if depth > 0 {
            queue.append(work)
        } else if hostCallsOutsideDispatch > 0 {
            let bound = NIOLoopBound((self, work), eventLoop: eventLoop)
            eventLoop.execute { bound.value.0.enqueue(bound.value.1) }
        } else {
            dispatch { run(work) }
        }
    }

    /// Wraps every host function: see `enqueue`.
    func hostCall<Result>(_ body: () -> Result) -> Result {
        if depth > 0 { return body() }
        hostCallsOutsideDispatch += 1
        defer { hostCallsOutsideDispatch -= 1 }
        return body()
    }

    private func drain() {
        depth += 1 // still inside the dispatch that began this turn: its clock reading holds
        while let work = queue.popFirst() { run(work) }
        // A burst (thousands of pipelined completions) does not keep its ring.
        if queue.capacity > 1024 { queue = CircularBuffer(initialCapacity: 16) }
        depth -= 1
    }

    private func run(_ work: Work) {
        switch work {
        case let .serviceRead(stream): stream.serviceRead()
        case let .writeDone(stream, token, error): stream.writeDone(token, error)
        case let .notifyClosed(stream): stream.notifyClosed()
        case let .completion(body): body()
        }
    }
}

/// Carries loop-confined values through `EventLoop.execute`, which runs on that same loop.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
