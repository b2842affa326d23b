import CWharf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a stream operation failed or a stream closed; each maps to one `WHARF_E_*` code.
public enum StreamError: Error, Equatable, Sendable {
    case closed
    case busy
    case limitExceeded
    case bufferFull
    case invalidArgument
    case wrongThread
    case connectionReset
    case io
    case timedOut
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

    public var code: Int32 {
        switch self {
        case .closed: WHARF_E_CLOSED
        case .busy: WHARF_E_BUSY
        case .limitExceeded: WHARF_E_LIMIT
        case .bufferFull: WHARF_E_BUFFER_FULL
        case .invalidArgument: WHARF_E_INVALID
        case .wrongThread: WHARF_E_WRONG_THREAD
        case .connectionReset: WHARF_E_RESET
        case .io: WHARF_E_IO
        case .timedOut: WHARF_E_TIMEOUT
        case .shuttingDown: WHARF_E_SHUTDOWN
        case .refused: WHARF_E_REFUSED
        case .unresolved: WHARF_E_RESOLVE
        case .unreachable: WHARF_E_UNREACHABLE
        case .tlsFailed: WHARF_E_TLS
        }
    }

    /// The text `wharf_host_api.strerror` returns, as a static C string.
    public static func describe(_ code: Int32) -> StaticString {
        switch code {
        case WHARF_OK: "success"
        case WHARF_E_CLOSED: "stream closed"
        case WHARF_E_BUSY: "a read is already pending"
        case WHARF_E_LIMIT: "message exceeds max_bytes"
        case WHARF_E_BUFFER_FULL: "read buffer full (max_buffer_size)"
        case WHARF_E_INVALID: "invalid argument"
        case WHARF_E_WRONG_THREAD: "called off the stream's event loop"
        case WHARF_E_NOMEM: "out of memory"
        case WHARF_E_RESET: "connection reset by peer"
        case WHARF_E_IO: "I/O error"
        case WHARF_E_UNSUPPORTED: "not supported"
        case WHARF_E_TIMEOUT: "timed out"
        case WHARF_E_SHUTDOWN: "host shutting down"
        case WHARF_E_REFUSED: "connection refused"
        case WHARF_E_RESOLVE: "host name not resolved"
        case WHARF_E_UNREACHABLE: "host or network unreachable"
        case WHARF_E_TLS: "TLS handshake failed"
        default: "unknown error"
        }
    }
}
