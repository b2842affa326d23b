import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a listening channel does when accepting fails. Out of descriptors (or the kernel out
/// of memory), accept fails until something closes; NIO keeps the listener open, its read
/// still pending and the socket still readable, so it would call accept again at once,
/// forever, spinning a core (and NIO's own `AcceptBackoffHandler` never sees a read to delay
/// on that path). This closes the listener's `AcceptGate` for 100 ms after such an error
/// (connections wait in the backlog meanwhile), and logs failures at most once a second with
/// how many there were. One handler, not two, because every accepted connection passes
/// through the listening channel's pipeline.
final class AcceptBackoff: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let pause = TimeAmount.milliseconds(100)
    private let gate: AcceptGate
    private let listener: String
    private let logger: Logger
    private let failures = OncePerSecond()

    /// The listener's counters on the listening channel's loop.
    private let counters: CounterBlock

    init(listener: String, gate: AcceptGate, logger: Logger, counters: CounterBlock) {
        self.counters = counters
        self.listener = listener
        self.gate = gate
        self.logger = logger
    }

    static func isResourceExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError else { return context.fireErrorCaught(error) }
        let exhausted = Self.isResourceExhaustion(error.errnoCode)
        if exhausted, !gate.holds(.backoff) {
            gate.set(.backoff, true)
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { self.gate.set(.backoff, false) }
        }
        failed(errno: error.errnoCode, pausing: exhausted)
    }

    /// Counts and logs (at most once a second) a failed accept; `pausing`: accepting stops
    /// for `pause`. A relay pump's listener (`PumpListener`) pauses itself and reports here.
    func failed(errno code: CInt, pausing: Bool) {
        counters.add(ListenerField.acceptErrors + AcceptFailure(errno: code).rawValue)
        guard let count = failures.record() else { return }
        let pause = pausing ? "; accepting pauses \(Self.pause.nanoseconds / 1_000_000) ms at a time"
            + (Self.isResourceExhaustion(code) ? " until descriptors free up" : "") : ""
        logger.error("\(listener): cannot accept: \(String(cString: strerror(code)).lowercased())\(pause)",
                     metadata: ["failures": "\(count)"])
    }
}

extension AcceptFailure {
    init(errno code: CInt) {
        switch code {
        case EMFILE: self = .emfile
        case ENFILE: self = .enfile
        case ENOBUFS: self = .enobufs
        case ENOMEM: self = .enomem
        default: self = .other
        }
    }
}
