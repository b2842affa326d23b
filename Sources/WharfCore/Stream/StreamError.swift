import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a stream operation failed or a stream closed. The plugin adapter maps each case to
/// one `WHARF_E_*` code (`Plugin/StatusCode.swift`); nothing in `Stream/` knows the codes.
public enum StreamError: Error, Equatable, Sendable, CaseIterable {
    case closed
    /// A read is already pending.
    case busy
    /// The stream belongs to a relay: reads and writes are the relay's.
    case relayed
    /// start_tls on a stream with something pending, buffered or unsent.
    case notIdle
    case limitExceeded
    case bufferFull
    /// A write would leave more than max_write_buffer_size unsent.
    case writeBufferFull
    case invalidArgument
    case wrongThread
    case unsupported
    case connectionReset
    case io
    /// A deadline the caller chose passed (connect, handshake, close linger, a plugin's
    /// read deadline, a relay's idle timeout).
    case timedOut
    /// The listener's idle_timeout_ms: no byte either way for that long.
    case idleTimeout
    /// The listener's read_timeout_ms: a message began arriving and did not complete.
    case readTimeout
    /// The listener's max_lifetime_ms.
    case lifetimeExceeded
    /// A timer cancelled by its owner.
    case cancelled
    case shuttingDown
    case refused
    case unresolved
    case unreachable
    case tlsFailed

    /// A failed socket call: the peer went away (reset, broken pipe, timed out), or some
    /// other I/O error.
    init(socketErrno code: CInt) {
        switch code {
        case ECONNRESET, ECONNABORTED, EPIPE, ETIMEDOUT: self = .connectionReset
        default: self = .io
        }
    }

    /// Why a connect failed, from its errno.
    init(connectErrno code: CInt) {
        switch code {
        case ECONNREFUSED: self = .refused
        case EHOSTUNREACH, ENETUNREACH: self = .unreachable
        case ETIMEDOUT: self = .timedOut
        default: self = .io
        }
    }

    /// What an error NIO reported on a stream's channel means for the stream.
    init(channelError error: any Error) {
        if let error = error as? IOError {
            self.init(socketErrno: error.errnoCode)
        } else if error is ChannelError {
            self = .closed
        } else if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            self = .tlsFailed
        } else {
            self = .io
        }
    }
}

extension StreamError: CustomStringConvertible {
    public var description: String { "\(text)" }

    /// Static text, so the C ABI's strerror can hand out a pointer to it.
    public var text: StaticString {
        switch self {
        case .closed: "stream closed"
        case .busy: "a read is already pending"
        case .relayed: "the stream is relayed"
        case .notIdle: "the stream is not idle"
        case .limitExceeded: "message exceeds max_bytes"
        case .bufferFull: "read buffer full (max_buffer_size)"
        case .invalidArgument: "invalid argument"
        case .wrongThread: "called off the stream's event loop"
        case .unsupported: "not supported"
        case .connectionReset: "connection reset by peer"
        case .io: "I/O error"
        case .timedOut: "timed out"
        case .idleTimeout: "idle timeout"
        case .readTimeout: "read timeout (message incomplete)"
        case .lifetimeExceeded: "connection lifetime exceeded"
        case .cancelled: "cancelled"
        case .shuttingDown: "host shutting down"
        case .refused: "connection refused"
        case .unresolved: "host name not resolved"
        case .unreachable: "host or network unreachable"
        case .tlsFailed: "TLS handshake failed"
        case .writeBufferFull: "write buffer full (max_write_buffer_size)"
        }
    }
}
