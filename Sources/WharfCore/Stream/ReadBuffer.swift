import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Who hears of a completion. Opaque to the stream: its owner (the plugin adapter, or a
/// Swift caller) made it and interprets it; the stream only keeps it with the operation,
/// so a pending read is one value (request + token), never split between two owners.
public struct CompletionToken: Equatable, @unchecked Sendable {
    public let function: OpaquePointer?
    public let context: UnsafeMutableRawPointer?

    public init(function: OpaquePointer?, context: UnsafeMutableRawPointer?) {
        self.function = function
        self.context = context
    }
}

/// The read side of an IOStream, as a plain value: the receive buffer, at most one pending
/// read, and what the peer and the owner have closed. It performs no I/O and calls no one;
/// `StreamStateMachine` owns it.
///
/// Searches resume where the previous one stopped, so finding a delimiter or a pattern is
/// linear in the bytes received, however they are split.
public struct ReadBuffer {
    public struct PendingRead {
        public let request: ReadRequest
        public let token: CompletionToken
    }

    public enum StartResult: Equatable {
        case started
        case rejected(StreamError)
    }

    /// What happens to the pending read now. `deliver` and `fail` have already cleared it.
    public enum Outcome: Equatable {
        /// These bytes complete the read. They share storage with the receive buffer: no copy.
        case deliver(ByteBuffer, CompletionToken)
        /// The read cannot be satisfied; the stream must close (see `closesStream`).
        case fail(StreamError, CompletionToken)
        /// The pending read needs more input (or there is no pending read).
        case waitForData

        public static func == (lhs: Outcome, rhs: Outcome) -> Bool {
            switch (lhs, rhs) {
            case let (.deliver(a, _), .deliver(b, _)): a == b
            case let (.fail(a, _), .fail(b, _)): a == b
            case (.waitForData, .waitForData): true
            default: false
            }
        }
    }

    public let maxBufferSize: Int
    public private(set) var pending: PendingRead?
    /// The peer sent FIN: nothing more will arrive, buffered data is still readable.
    public private(set) var inputEnded = false
    /// The stream is closing or closed: new reads are refused. `closeReason` is why.
    public private(set) var readsClosed = false
    public private(set) var closeReason: StreamError?

    private var buffer: ByteBuffer?
    /// Bytes of the buffer already searched for the pending read's delimiter or pattern.
    private var scanned = 0
    private var matcher: RegexMatcher?

    public init(maxBufferSize: Int) {
        self.maxBufferSize = max(1, maxBufferSize)
    }

    public var bufferedBytes: Int { buffer?.readableBytes ?? 0 }
    /// Memory the receive buffer holds (0 when released).
    public var bufferCapacity: Int { buffer?.capacity ?? 0 }
    public var hasPendingRead: Bool { pending != nil }

    /// The pending read cannot complete on an empty buffer while input is open (a regex may
    /// match the empty string, and a zero-byte read completes at once: those are evaluated).
    /// Decided once when the read starts, not by looking into the request each time.
    public private(set) var pendingNeedsBytes = false

    /// Whether the socket should be read for this read side. Mirrors Tornado: read while a
    /// pending read is unsatisfied and the buffer has room; with no read pending, read only
    /// to notice a peer close on an empty buffer. Otherwise unread data stays in the kernel
    /// and TCP throttles the sender.
    public var wantsSocketRead: Bool {
        if inputEnded || readsClosed { return false }
        if pending != nil { return bufferedBytes < maxBufferSize }
        return bufferedBytes == 0
    }

    public mutating func startRead(_ request: ReadRequest,
                                   token: CompletionToken = CompletionToken(function: nil, context: nil)) -> StartResult {
        if readsClosed { return .rejected(closeReason ?? .closed) }
        if pending != nil { return .rejected(.busy) }
        pending = PendingRead(request: request, token: token)
        scanned = 0
        switch request {
        case let .untilRegex(regex, _):
            matcher = RegexMatcher(regex: regex)
            pendingNeedsBytes = false
        case let .bytes(count, _):
            matcher = nil
            pendingNeedsBytes = count > 0
        case .until, .untilClose:
            matcher = nil
            pendingNeedsBytes = true
        }
        return .started
    }

    public mutating func receive(_ chunk: ByteBuffer) {
        guard chunk.readableBytes > 0 else { return }
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = chunk
        } else {
            var incoming = chunk
            buffer!.writeBuffer(&incoming)
        }
    }

    public mutating func endOfInput() {
        inputEnded = true
    }

    /// The stream is closing (locally, or because of `reason`); no new reads are accepted.
    /// A pending read is still evaluated once more against the buffer.
    public mutating func closeReads(reason: StreamError?) {
        if !readsClosed {
            readsClosed = true
            closeReason = reason
        }
    }

    /// A graceful close that could not finish (its flush was cut off): `reason` replaces a
    /// clean one, so the owner learns bytes may have been lost.
    public mutating func closeUncleanly(reason: StreamError) {
        readsClosed = true
        if closeReason == nil { closeReason = reason }
    }

    /// Decides the pending read with what is buffered now, in one step: a delivery or a
    /// failure takes the read (and the delivered bytes) out of the buffer.
    public mutating func next() -> Outcome {
        guard let read = pending else { return .waitForData }
        switch decide(read.request) {
        case let .some(.success(length)):
            clearPending()
            return .deliver(takePrefix(length), read.token)
        case let .some(.failure(error)):
            clearPending()
            return .fail(error, read.token)
        case .none:
            return .waitForData
        }
    }

    /// Takes the pending read away unresolved (a per-read deadline passed): the buffer and
    /// everything else stay as they are.
    public mutating func cancelPending() -> CompletionToken? {
        defer { clearPending() }
        return pending?.token
    }

    /// Everything buffered and not yet delivered (for a relay taking over the stream).
    public mutating func takeAllBuffered() -> ByteBuffer? {
        guard pending == nil, let all = buffer, all.readableBytes > 0 else { return nil }
        buffer = nil
        return all
    }

    /// The read's verdict: deliver `length` bytes, fail, or wait (nil).
    private mutating func decide(_ request: ReadRequest) -> Result<Int, StreamError>? {
        let available = bufferedBytes
        switch request {
        case let .bytes(count, partial):
            if count == 0 { return .success(0) }
            if partial, available > 0 { return .success(min(count, available)) }
            if available >= count { return .success(count) }
        case let .until(delimiter, maxBytes):
            if let end = searchDelimiter(delimiter, maxBytes: maxBytes) {
                return maxBytes == 0 || end <= maxBytes ? .success(end) : .failure(.limitExceeded)
            }
            if maxBytes > 0, available > maxBytes { return .failure(.limitExceeded) }
        case let .untilRegex(_, maxBytes):
            if let end = searchPattern(maxBytes: maxBytes) { return .success(end) }
            if maxBytes > 0, available > maxBytes { return .failure(.limitExceeded) }
        case let .untilClose(maxBytes):
            if maxBytes > 0, available > maxBytes { return .failure(.limitExceeded) }
            if inputEnded || (readsClosed && closeReason == nil) || closeReason == .connectionReset {
                return .success(available)
            }
        }
        if readsClosed { return .failure(closeReason ?? .closed) }
        if inputEnded { return .failure(.closed) }
        if available >= maxBufferSize { return .failure(.bufferFull) }
        return nil
    }

    private mutating func takePrefix(_ length: Int) -> ByteBuffer {
        guard length > 0, buffer != nil else { return ByteBuffer() }
        let slice = buffer!.readSlice(length: length)!
        if buffer!.readableBytes == 0 {
            buffer = nil
        }
        return slice
    }

    private mutating func clearPending() {
        pending = nil
        pendingNeedsBytes = false
        scanned = 0
        matcher = nil
    }

    /// Drops the receive buffer's spare capacity when it holds only a small remainder, so
    /// an idle connection with a partial message does not pin a whole 64 KiB chunk.
    public mutating func compactIfWasteful() {
        guard let current = buffer, current.capacity > 4096,
              current.readableBytes * 4 < current.capacity else { return }
        var compact = ByteBufferAllocator().buffer(capacity: current.readableBytes)
        var source = current
        compact.writeBuffer(&source)
        buffer = compact
    }

    /// Where the first delimiter ends within the search window, resuming the search
    /// where the last one stopped (minus an overlap for a delimiter split across chunks).
    private mutating func searchDelimiter(_ delimiter: [UInt8], maxBytes: Int) -> Int? {
        guard let buffer else { return nil }
        let window = maxBytes > 0 ? min(buffer.readableBytes, maxBytes) : buffer.readableBytes
        let from = max(0, scanned - (delimiter.count - 1))
        guard window - from >= delimiter.count else { return nil }
        let found: Int? = buffer.withUnsafeReadableBytes { bytes in
            delimiter.withUnsafeBytes { needle in
                Self.firstIndex(of: needle, in: UnsafeRawBufferPointer(rebasing: bytes[from..<window]))
            }
        }
        if let found { return from + found + delimiter.count }
        scanned = window
        return nil
    }

    private mutating func searchPattern(maxBytes: Int) -> Int? {
        guard let buffer, matcher != nil else { return nil }
        let window = maxBytes > 0 ? min(buffer.readableBytes, maxBytes) : buffer.readableBytes
        let from = scanned
        guard window > from || from == 0 else { return nil }
        let found: Int? = buffer.withUnsafeReadableBytes { bytes in
            matcher!.scan(UnsafeRawBufferPointer(rebasing: bytes[from..<window]))
        }
        if let found { return from + found }
        scanned = window
        return nil
    }

    /// memchr for the first byte, then compare the rest: the same strategy as glibc's
    /// memmem for short needles.
    static func firstIndex(of needle: UnsafeRawBufferPointer, in haystack: UnsafeRawBufferPointer) -> Int? {
        let needleCount = needle.count
        guard needleCount > 0, haystack.count >= needleCount, let base = haystack.baseAddress,
              let needleBase = needle.baseAddress else { return nil }
        let first = Int32(needle[0])
        let lastStart = haystack.count - needleCount
        var offset = 0
        while offset <= lastStart {
            guard let hit = memchr(base + offset, first, lastStart - offset + 1) else { return nil }
            let position = base.distance(to: UnsafeRawPointer(hit))
            if needleCount == 1 || memcmp(base + position + 1, needleBase + 1, needleCount - 1) == 0 {
                return position
            }
            offset = position + 1
        }
        return nil
    }
}
