import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The control channel between the supervisor and one worker process: a socketpair whose
/// worker end is the worker's fd 3. Text lines, so `strace` shows what was said.
///
/// The supervisor first sends the config the worker serves (`config <byte count>` and the
/// text), then `accept`, and to end it `retire`, `drain` or `stop`. The worker answers `ready`
/// or `failed`, sends `alive` while all of its event loops are turning, and `released` once it
/// stopped accepting. End of file on either side means the other side is gone: a worker whose
/// supervisor vanished drains and exits.
public enum WorkerMessage: Equatable, Sendable {
    /// Plugins loaded, every listener served: the worker is accepting.
    case ready
    /// Could not start; `kind` decides the supervisor's exit code at startup.
    case failed(GatewayError.Kind, String)
    /// Heartbeat: every event loop ran within the last second.
    case alive
    /// Stopped accepting (told to drain): another worker may take over its sockets.
    case released
    /// Before `ready`: which code serves a plugin instance, for the status page (the
    /// supervisor never loads a plugin itself).
    case plugin(PluginDescription)

    public var line: String {
        switch self {
        case .ready: "ready\n"
        case .alive: "alive\n"
        case .released: "released\n"
        case let .failed(kind, message):
            "failed \(kind == .listen ? "listen" : "plugin") \(message.replacing("\n", with: " "))\n"
        case let .plugin(description):
            "plugin \(description.fields.map { $0.replacing(" ", with: "_").replacing("\n", with: "_") }.joined(separator: " "))\n"
        }
    }

    public init?(line: Substring) {
        switch line {
        case "ready": self = .ready
        case "alive": self = .alive
        case "released": self = .released
        case _ where line.hasPrefix("plugin "):
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).dropFirst().map(String.init)
            guard let description = PluginDescription(fields: fields) else { return nil }
            self = .plugin(description)
        default:
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "failed" else { return nil }
            self = .failed(parts[1] == "listen" ? .listen : .plugin, String(parts[2]))
        }
    }
}

public enum SupervisorMessage: String, Sendable {
    /// Start accepting: a worker starts paused, so two processes never accept from one
    /// socket (the one it replaces has released it, or there was none).
    case accept
    /// A reload replaced this worker: stop accepting; keep serving open connections until
    /// they end or drain_timeout_ms passes; exit.
    case retire
    /// The gateway stops: stop accepting; close each connection at its next message
    /// boundary (idle), the rest when drain_timeout_ms passes; exit.
    case drain
    /// Close every connection now and exit.
    case stop
    /// Log rotation (SIGUSR1): open the access log file again.
    case reopen

    public var line: String { rawValue + "\n" }

    /// The first message: the config text the worker is to serve, and the secret its TLS
    /// session tickets are keyed with (hex; the same for every worker of this supervisor).
    public static func config(_ text: String, ticketSecret: [UInt8]) -> String {
        "config \(text.utf8.count) \(Hex.encode(ticketSecret))\n" + text
    }
}

/// Splits the control channel's bytes into lines. A peer that sends a line longer than
/// 64 KiB is broken; the channel is closed.
final class ControlLineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var pending = ByteBuffer()
    private let onLine: (Substring) -> Void
    private let onClose: () -> Void

    init(onLine: @escaping (Substring) -> Void, onClose: @escaping () -> Void) {
        self.onLine = onLine
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        pending.writeBuffer(&bytes)
        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - pending.readerIndex
            let text = pending.readString(length: length) ?? ""
            pending.moveReaderIndex(forwardBy: 1)
            onLine(Substring(text))
        }
        if pending.readableBytes > 65536 { context.close(promise: nil) }
        pending.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Both ends of a control channel: the socketpair, and the line-splitting NIO channel over
/// one end (supervisor to worker, old supervisor to new, worker to supervisor).
enum ControlChannel {
    /// A connected pair, both ends close-on-exec: `local` stays, `remote` goes to a child.
    static func pair() -> (local: CInt, remote: CInt)? {
        var ends: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            return nil
        }
        return (ends[0], ends[1])
    }

    /// A channel on `eventLoop` over the connected `descriptor`, read as lines.
    static func open(_ descriptor: CInt, on eventLoop: any EventLoop,
                     onLine: @escaping @Sendable (Substring) -> Void,
                     onClose: @escaping @Sendable () -> Void = {}) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlLineHandler(onLine: onLine, onClose: onClose))
                }
            }
            .withConnectedSocket(descriptor)
    }
}

/// A plugin instance and the library that serves it.
public struct PluginDescription: Equatable, Sendable, Codable {
    public var instance: String
    public var library: String
    public var path: String
    public var version: String
    public var abi: String

    var fields: [String] { [instance, library, path, version, abi] }

    init(instance: String, library: String, path: String, version: String, abi: String) {
        (self.instance, self.library, self.path, self.version, self.abi) = (instance, library, path, version, abi)
    }

    init?(fields: [String]) {
        guard fields.count == 5 else { return nil }
        self.init(instance: fields[0], library: fields[1], path: fields[2], version: fields[3], abi: fields[4])
    }
}
