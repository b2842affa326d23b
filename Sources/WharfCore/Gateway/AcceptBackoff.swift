import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Accepting when the process is out of descriptors (or the kernel out of memory) fails
/// until something closes. NIO keeps the listener open, its read still pending, and the
/// socket still readable, so it would call accept again at once, forever, spinning a core
/// (and NIO's own `AcceptBackoffHandler` never sees a read to delay on that path). This
/// closes the listener's `AcceptGate` for 100 ms after such an error (connections wait in the
/// backlog meanwhile); `AcceptErrorReporter` logs it.
final class AcceptBackoff: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let pause = TimeAmount.milliseconds(100)
    private let gate: AcceptGate

    init(gate: AcceptGate) { self.gate = gate }

    static func handlers(listener: String, gate: AcceptGate, logger: Logger) -> [any ChannelHandler] {
        [AcceptBackoff(gate: gate), AcceptErrorReporter(listener: listener, logger: logger)]
    }

    static func isResourceExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        defer { context.fireErrorCaught(error) }
        guard let error = error as? IOError, Self.isResourceExhaustion(error.errnoCode),
              !gate.holds(.backoff) else { return }
        gate.set(.backoff, true)
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { self.gate.set(.backoff, false) }
    }
}

final class AcceptErrorReporter: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let listener: String
    private let logger: Logger
    private var lastReport: NIODeadline?
    private var unreported = 0

    init(listener: String, logger: Logger) {
        self.listener = listener
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError else { return context.fireErrorCaught(error) }
        unreported += 1
        let now = NIODeadline.now()
        if let lastReport, now - lastReport < .seconds(1) { return }
        lastReport = now
        let pausing = AcceptBackoff.isResourceExhaustion(error.errnoCode)
            ? "; accepting pauses \(AcceptBackoff.pause.nanoseconds / 1_000_000) ms at a time until descriptors free up"
            : ""
        logger.error("\(listener): cannot accept: \(String(cString: strerror(error.errnoCode)).lowercased())\(pausing)",
                     metadata: ["failures": "\(unreported)"])
        unreported = 0
    }
}
