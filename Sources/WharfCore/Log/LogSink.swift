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
/// the count is written as soon as the writer gets through again.
public final class LogSink: @unchecked Sendable {
    /// Standard error, with up to 1 MiB waiting.
    public static let standardError = LogSink(descriptor: 2, capacity: 1 << 20)

    private let descriptor: CInt
    private let capacity: Int
    /// 0: nothing queued; 1: lines are waiting for the writer.
    private let state = ConditionLock(value: 0)
    private var queued: [UInt8] = []
    private var dropped = 0
    private var writing = false
    private var started = false

    public init(descriptor: CInt, capacity: Int) {
        self.descriptor = descriptor
        self.capacity = capacity
    }

    /// Lines dropped so far because the queue was full.
    private var droppedTotal = 0

    /// Lines dropped so far because the queue was full (any thread).
    public var droppedLines: Int {
        state.lock()
        defer { state.unlock() }
        return droppedTotal
    }

    /// Queues one line (it should end in a newline). Never blocks on the descriptor.
    public func write(_ line: String) {
        state.lock()
        if !started {
            started = true
            startWriter()
        }
        if queued.count + line.utf8.count > capacity {
            dropped += 1
            droppedTotal += 1
        } else {
            queued.append(contentsOf: line.utf8)
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
                queued.removeAll(keepingCapacity: true)
                let lost = dropped
                dropped = 0
                writing = true
                state.unlock(withValue: 0)
                if lost > 0 {
                    batch += Array("wharf: dropped \(lost) log line(s): the log output was too slow\n".utf8)
                }
                Descriptor.writeAll(descriptor, batch)
                state.lock()
                writing = false
                state.unlock()
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
