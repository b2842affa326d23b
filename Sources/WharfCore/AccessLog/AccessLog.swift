import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A worker's access log: lines go through a bounded queue to a writer thread (a `LogSink`),
/// so a slow disk or a stalled pipe never holds an event loop; when the queue is full, lines
/// are dropped, counted in `wharf_access_log_lines_dropped_total`, and reported in the ordinary
/// log once the writer gets through. Every worker appends to the same file (`O_APPEND`:
/// one write per batch of whole lines, so lines never interleave).
public final class AccessLog: Sendable {
    public let config: AccessLogConfig
    private let sink: LogSink

    /// Opens the file (created 0640 if missing); nil path: standard error.
    public init(_ config: AccessLogConfig, logger: Logger) throws(GatewayError) {
        self.config = config
        let descriptor = try config.path.map { path throws(GatewayError) in try Self.open(path) } ?? 2
        sink = LogSink(descriptor: descriptor, capacity: 4 << 20, ownsDescriptor: config.path != nil) { lost in
            logger.warning("dropped \(lost) access log line(s): the access log output was too slow")
            return []
        }
    }

    static func open(_ path: String) throws(GatewayError) -> CInt {
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw GatewayError(kind: .listen, message: "access_log: cannot open \(path): "
                + String(cString: strerror(errno)).lowercased())
        }
        return descriptor
    }

    func write(_ line: [UInt8]) { sink.write(line) }

    /// Lines lost so far because the output could not keep up.
    var droppedLines: Int { sink.droppedLines }

    /// Log rotation (SIGUSR1): writes go to a freshly opened file at the same path from the
    /// next line on. Returns why not, if the file cannot be opened (the old one stays).
    public func reopen() -> String? {
        guard let path = config.path else { return nil }
        do throws(GatewayError) {
            sink.replaceDescriptor(try Self.open(path))
            return nil
        } catch {
            return error.message
        }
    }

    /// At exit: the last lines should reach the file.
    public func flush() { sink.flush(milliseconds: 2000) }
}

/// One listener's view of the access log: its identity, stamped on each of its lines.
final class ListenerAccessLog: Sendable {
    let log: AccessLog
    private let line: AccessLogLine

    init(log: AccessLog, origin: AccessLogOrigin) {
        self.log = log
        self.line = AccessLogLine(origin: origin, format: log.config.format)
    }

    func write(_ record: ConnectionRecord) {
        log.write(line.render(record))
    }
}
