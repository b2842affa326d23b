import CWharf

/// A failed stream operation, with the host's code and text.
public struct WharfError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    let text: String

    init(_ code: Int32, host: UnsafePointer<wharf_host_api>) {
        self.code = code
        self.text = host.pointee.strerror(code).map { String(cString: $0) } ?? "error \(code)"
    }

    public var description: String { text }
    /// The stream ended (peer closed, or closed here): the usual end of a handler's loop.
    public var isClosed: Bool { code == WHARF_E_CLOSED }
}

/// One connection, for async Swift: Tornado's IOStream with `await`. Every method must be
/// called from the handler's task (it runs on the connection's event loop). Reads copy the
/// bytes out of the host's buffer; `write` queues a copy and returns at once (the host sends
/// it in order and throttles reading while output is backed up); `flush` waits until
/// everything written has reached the kernel.
public final class Stream: @unchecked Sendable {
    private let host: UnsafePointer<wharf_host_api>
    private let executor: LoopExecutor
    /// Nil once the close notification has come.
    private var handle: OpaquePointer?
    private var pendingRead: UnsafeContinuation<[UInt8], any Error>?
    private var pendingFlushes: [UnsafeContinuation<Void, any Error>] = []
    /// Why the stream closed (nil: still open, or closed cleanly).
    public private(set) var closeReason: WharfError?
    /// A read failed in a way that closes the stream (all but a read deadline): the host is
    /// closing it with that reason, which a close from here must not replace.
    private var closedByHost = false

    init(host: UnsafePointer<wharf_host_api>, handle: OpaquePointer, executor: LoopExecutor) {
        self.host = host
        self.handle = handle
        self.executor = executor
        // Kept alive by the executor's table of open streams until the close notification,
        // after which no callback mentions it.
        executor.open[UInt(bitPattern: handle)] = self
        _ = host.pointee.set_close_callback(handle, Self.onClose, Unmanaged.passUnretained(executor).toOpaque())
    }

    private var userdata: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: Reads

    /// Up to `count` bytes, as soon as any are available (read_bytes with partial).
    public func read(upTo count: Int) async throws -> [UInt8] {
        try await read { host, handle, callback, userdata in host.read_bytes(handle, count, 1, callback, userdata) }
    }

    /// Exactly `count` bytes.
    public func read(exactly count: Int) async throws -> [UInt8] {
        try await read { host, handle, callback, userdata in host.read_bytes(handle, count, 0, callback, userdata) }
    }

    /// Up to and including `delimiter`; `maxBytes` (0: the listener's limit) bounds it.
    public func read(until delimiter: [UInt8], maxBytes: Int = 0) async throws -> [UInt8] {
        try await read { host, handle, callback, userdata in
            host.read_until(handle, delimiter, delimiter.count, maxBytes, callback, userdata)
        }
    }

    /// Chunks of up to `count` bytes until the peer's end of input:
    /// `for try await chunk in stream.chunks(upTo: 20) { ... }`.
    public func chunks(upTo count: Int) -> Chunks { Chunks(stream: self, size: count) }

    public struct Chunks: AsyncSequence, Sendable {
        public typealias Element = [UInt8]
        let stream: Stream
        let size: Int

        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: Stream
            let size: Int

            public mutating func next() async throws -> [UInt8]? {
                do {
                    return try await stream.read(upTo: size)
                } catch let error as WharfError where error.isClosed {
                    return nil
                }
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream, size: size) }
    }

    /// Cancelling the handler's task aborts its connection: the pending read then fails and
    /// the task ends. (A read that should only give up after a while is a deadline instead:
    /// `readTimeout`.)
    private func read(_ start: (wharf_host_api, OpaquePointer, wharf_read_cb, UnsafeMutableRawPointer) -> Int32)
        async throws -> [UInt8] {
        guard let handle else { throw WharfError(WHARF_E_CLOSED, host: host) }
        if Task.isCancelled { abortSoon() }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let status = start(host.pointee, handle, Self.onRead, userdata)
                if status == WHARF_OK {
                    pendingRead = continuation
                } else {
                    continuation.resume(throwing: WharfError(status, host: host))
                }
            }
        } onCancel: {
            abortSoon()
        }
    }

    /// From any thread: the connection is reset on the loop.
    private nonisolated func abortSoon() {
        executor.post { [self] in
            if let handle { _ = host.pointee.abort(handle) }
        }
    }

    /// A deadline on every read from now on (set_read_timeout): a read still waiting after it
    /// throws WharfError with WHARF_E_TIMEOUT, and the stream stays open. Nil: none.
    public var readTimeout: Duration? {
        didSet {
            guard let handle else { return }
            let milliseconds = readTimeout.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 } ?? 0
            _ = host.pointee.set_read_timeout(handle, UInt32(clamping: max(0, milliseconds)))
        }
    }

    private static let onRead: wharf_read_cb = { userdata, _, status, data, length in
        let stream = Unmanaged<Stream>.fromOpaque(userdata!).takeUnretainedValue()
        stream.executor.entry {
            guard let continuation = stream.pendingRead else { return }
            stream.pendingRead = nil
            if status == WHARF_OK {
                continuation.resume(returning: Array(UnsafeBufferPointer(start: data, count: length)))
            } else {
                if status != WHARF_E_TIMEOUT { stream.closedByHost = true }
                continuation.resume(throwing: WharfError(status, host: stream.host))
            }
        }
    }

    // MARK: Writes and the end

    /// Queues `bytes` (copied before this returns).
    public func write(_ bytes: some Collection<UInt8>) throws {
        guard let handle else { throw WharfError(WHARF_E_CLOSED, host: host) }
        let status = bytes.withContiguousStorageIfAvailable { buffer in
            host.pointee.write(handle, buffer.baseAddress, buffer.count, nil, nil)
        } ?? Array(bytes).withUnsafeBufferPointer { host.pointee.write(handle, $0.baseAddress, $0.count, nil, nil) }
        if status != WHARF_OK { throw WharfError(status, host: host) }
    }

    /// Waits until everything written so far has been handed to the kernel.
    public func flush() async throws {
        guard let handle else { throw WharfError(WHARF_E_CLOSED, host: host) }
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            let status = host.pointee.write(handle, nil, 0, Self.onWritten, userdata)
            if status == WHARF_OK {
                pendingFlushes.append(continuation)
            } else {
                continuation.resume(throwing: WharfError(status, host: host))
            }
        }
    }

    private static let onWritten: wharf_write_cb = { userdata, _, status in
        let stream = Unmanaged<Stream>.fromOpaque(userdata!).takeUnretainedValue()
        stream.executor.entry {
            guard !stream.pendingFlushes.isEmpty else { return }
            let continuation = stream.pendingFlushes.removeFirst()
            if status == WHARF_OK { continuation.resume() } else { continuation.resume(throwing: WharfError(status, host: stream.host)) }
        }
    }

    /// Closes gracefully: what was written is sent first.
    public func close() {
        if let handle, !closedByHost { _ = host.pointee.close(handle) }
    }

    private static let onClose: wharf_close_cb = { userdata, handle, reason in
        let executor = Unmanaged<LoopExecutor>.fromOpaque(userdata!).takeUnretainedValue()
        guard let handle, let stream = executor.open.removeValue(forKey: UInt(bitPattern: handle)) else { return }
        stream.handle = nil
        if reason != WHARF_OK { stream.closeReason = WharfError(reason, host: stream.host) }
    }
}
