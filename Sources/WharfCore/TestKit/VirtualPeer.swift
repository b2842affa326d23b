import NIOCore
import NIOEmbedded

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One in-memory connection, seen from the far side: a test client, or an upstream server
/// the plugin dialed. The plugin's end is a real stream (IOStreamHandler and its owner) on an
/// EmbeddedChannel; what the stream writes is what this peer receives.
final class VirtualPeer {
    let channel: EmbeddedChannel
    let handler: IOStreamHandler
    private let outputShutdown = OutputShutdown()
    /// Bytes the plugin's side sent and no expectation has consumed yet.
    private(set) var received: [UInt8] = []

    init(loop: LoopContext, owner: any StreamOwner, isClient: Bool, options: StreamOptions = StreamOptions(),
         holdsDrain: Bool = true) {
        // The session's loop is always an EmbeddedEventLoop.
        channel = EmbeddedChannel(loop: loop.eventLoop as! EmbeddedEventLoop)
        handler = IOStreamHandler(loop: loop, options: options, streamID: loop.nextStreamID(), isClient: isClient,
                                  holdsDrain: holdsDrain, owner: owner)
        try? channel.pipeline.syncOperations.addHandler(outputShutdown)
        try? channel.pipeline.syncOperations.addHandler(handler)
        if let address = try? SocketAddress(ipAddress: "127.0.0.1", port: isClient ? 9 : 40000) {
            _ = channel.connect(to: address)
        }
    }

    private var eventLoop: EmbeddedEventLoop { channel.embeddedEventLoop }

    /// Gathers what the plugin's side has written.
    private func collect() {
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
            received += buffer.readableBytesView
        }
    }

    /// The plugin's side closed the connection, or shut its output (the peer read EOF).
    var isClosed: Bool {
        collect()
        return !channel.isActive || outputShutdown.happened
    }

    /// Why the stream closed, as the cases name it.
    var closeReason: String {
        guard let reason = handler.machine.closeReason else { return "ok" }
        return switch reason {
        case .closed: "ok"
        case .connectionReset: "reset"
        case .limitExceeded: "limit"
        case .bufferFull: "buffer_full"
        case .writeBufferFull: "write_buffer_full"
        case .timedOut: "timeout"
        case .idleTimeout: "idle_timeout"
        case .readTimeout: "read_timeout"
        case .lifetimeExceeded: "lifetime"
        case .shuttingDown: "shutdown"
        default: "\(reason)"
        }
    }

    func send(_ bytes: [UInt8], split: PluginTestCase.Split) throws {
        var pieces: [ArraySlice<UInt8>] = []
        switch split {
        case .whole: pieces = [bytes[...]]
        case .bytewise: pieces = bytes.indices.map { bytes[$0...$0] }
        case let .at(offsets):
            var start = 0
            for offset in offsets.sorted() where offset > start && offset < bytes.count {
                pieces.append(bytes[start..<offset])
                start = offset
            }
            pieces.append(bytes[start...])
        }
        for piece in pieces where !piece.isEmpty {
            guard channel.isActive else { throw StepFailure(message: "cannot send: the connection is closed") }
            try channel.writeInbound(ByteBuffer(bytes: piece))
            eventLoop.run()
        }
    }

    /// The far side sends FIN.
    func halfClose() {
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        eventLoop.run()
    }

    /// The far side resets the connection.
    func reset() {
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        eventLoop.run()
    }

    /// The case is over: whatever is still open goes.
    func abandon() {
        if channel.isActive { _ = channel.close() }
        _ = try? channel.finish()
    }

    /// Consumes the expected bytes if they are what was received next.
    func matches(_ expectation: PluginTestCase.Expectation) -> Bool {
        collect()
        switch expectation {
        case let .bytes(expected):
            guard received.starts(with: expected) else { return false }
            received.removeFirst(expected.count)
            return true
        case let .regex(pattern):
            guard let regex = try? Regex(pattern) else { return false }
            let text = String(decoding: received, as: UTF8.self)
            guard let match = try? regex.prefixMatch(in: text) else { return false }
            received.removeFirst(min(received.count, text[match.range].utf8.count))
            return true
        }
    }

    /// What differed, for the report.
    func mismatch(_ expectation: PluginTestCase.Expectation) -> String {
        collect()
        let state = channel.isActive ? "" : " (the connection is closed)"
        switch expectation {
        case let .bytes(expected):
            let common = zip(expected, received).prefix { $0 == $1 }.count
            let at = common < min(expected.count, received.count) ? "; first difference at byte \(common)" : ""
            return "expected \(Bytes.show(expected)), received \(Bytes.show(received))\(at)\(state)"
        case let .regex(pattern):
            if (try? Regex(pattern)) == nil { return "the pattern \(pattern) does not compile" }
            return "expected a match of /\(pattern)/, received \(Bytes.show(received))\(state)"
        }
    }
}

/// An EmbeddedChannel cannot half-close: a shutdown of the output is recorded here, as the
/// peer's end of input, and the channel stays open for the other direction.
private final class OutputShutdown: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private(set) var happened = false

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else { return context.close(mode: mode, promise: promise) }
        happened = true
        promise?.succeed()
    }
}

/// How bytes and times read in a report: quoted, with escapes.
enum Bytes {
    static func show(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "nothing" }
        var text = "\""
        for byte in bytes.prefix(200) {
            switch byte {
            case 10: text += "\\n"
            case 13: text += "\\r"
            case 9: text += "\\t"
            case 34: text += "\\\""
            case 92: text += "\\\\"
            case 32...126: text.append(Character(UnicodeScalar(byte)))
            default: text += "\\x" + Hex.encode(CollectionOfOne(byte))
            }
        }
        return text + "\"" + (bytes.count > 200 ? " (\(bytes.count) bytes)" : "")
    }

    static func show(_ time: TimeAmount) -> String {
        let milliseconds = time.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}
