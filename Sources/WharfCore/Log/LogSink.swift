import CWharfLinux
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where log lines go: a bounded queue in memory and one writer thread that does the blocking
/// writes. A logging thread (an event loop) only appends under a lock and never waits for the
/// descriptor, so a stalled standard error (a full pipe to journald or a container runtime
/// nobody drains) cannot stop traffic. When the queue is full, lines are dropped and counted;
/// the count is reported as soon as the writer gets through again (by `reportDropped`: into
/// the output itself for the ordinary log, elsewhere for the access log, whose lines must
/// all have one format).
public final class LogSink: @unchecked Sendable {
    /// Standard error, with up to 1 MiB waiting.
    public static let standardError = LogSink(descriptor: 2, capacity: 1 << 20)

    /// Written by the writer thread, swapped under the lock (`replaceDescriptor`).
    private var descriptor: CInt
    /// The descriptor belongs to the sink: closed when replaced.
    private var ownsDescriptor: Bool
    private let capacity: Int
    /// Called on the writer thread with the lines lost since the last report; returns bytes
    /// to write before the next batch (or none).
    private let reportDropped: (Int) -> [UInt8]
    /// 0: nothing queued; 1: lines are waiting for the writer.
    private let state = ConditionLock(value: 0)
    private var queued: [UInt8] = []
    /// Lines in `queued`.
    private var queuedLines = 0
    private var dropped = 0
    private var writing = false
    private var started = false

    public init(descriptor: CInt, capacity: Int, ownsDescriptor: Bool = false,
                reportDropped: @escaping (Int) -> [UInt8] = LogSink.droppedNotice) {
        self.descriptor = descriptor
        self.capacity = capacity
        self.ownsDescriptor = ownsDescriptor
        self.reportDropped = reportDropped
    }

    /// How long the writer lets lines gather after a write, in microseconds.
    static let coalescing: UInt32 = 2_000

    public static func droppedNotice(_ lost: Int) -> [UInt8] {
        Array("wharf: dropped \(lost) log line(s): the log output was too slow\n".utf8)
    }

    /// Writes go to `descriptor` from the next batch on; the previous one is closed once no
    /// write uses it (log rotation: SIGUSR1 reopens the file).
    public func replaceDescriptor(_ descriptor: CInt) {
        state.lock()
        let previous = ownsDescriptor ? self.descriptor : -1
        self.descriptor = descriptor
        ownsDescriptor = true
        retired.append(previous)
        state.unlock()
    }

    /// Descriptors replaced while a write may still use them; the writer closes them.
    private var retired: [CInt] = []

    /// Lines dropped so far because the queue was full.
    private var droppedTotal = 0

    /// Lines dropped so far because the queue was full (any thread).
    public var droppedLines: Int {
        state.lock()
        defer { state.unlock() }
        return droppedTotal
    }

    /// Queues one line (it should end in a newline). Never blocks on the descriptor.
    public func write(_ line: String) { write(Array(line.utf8)) }

    /// Queues one line's bytes (ending in a newline). Never blocks on the descriptor.
    public func write(_ line: [UInt8]) {
        state.lock()
        if !started {
            started = true
            startWriter()
        }
        if queued.count + line.count > capacity {
            dropped += 1
            droppedTotal += 1
        } else {
            queued.append(contentsOf: line)
            queuedLines += 1
        }
        state.unlock(withValue: 1)
    }

    /// Waits until everything queued so far is written, at most `milliseconds` (at exit: the
    /// last lines should not be lost, but a stalled descriptor must not hold the exit either).
    public func flush(milliseconds: Int = 1000) {
        for _ in 0..<max(1, milliseconds / 5) {
            state.lock()
            let idle = queued.isEmpty && !writing
            state.unlock()
            if idle { return }
            usleep(5000)
        }
    }

    private func startWriter() {
        let thread = ThreadStart { [self] in
            while true {
                state.lock(whenValue: 1)
                var batch = queued
                let lines = queuedLines
                queued.removeAll(keepingCapacity: true)
                queuedLines = 0
                let lost = dropped
                dropped = 0
                writing = true
                let target = descriptor
                let closing = retired
                retired.removeAll()
                state.unlock(withValue: 0)
                closing.filter { $0 >= 0 }.forEach { close($0) }
                if lost > 0 { batch = reportDropped(lost) + batch }
                Descriptor.writeAll(target, batch)
                state.lock()
                writing = false
                state.unlock()
                // Busy (lines gathered while the last write ran): let the next ones gather too,
                // instead of each waking this thread (a futex wake per access-log line costs a
                // busy core dearly). A lone line is written at once.
                if lines > 1 { usleep(Self.coalescing) }
            }
        }
        thread.start()
    }
}

/// A detached thread running `body` (named `wharf-log`).
private final class ThreadStart {
    private let body: () -> Void

    init(_ body: @escaping () -> Void) { self.body = body }

    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { argument in
            let start = Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue()
            cwharf_name_current_thread("wharf-log")
            start.body()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }
}
