import CWharf

/// The one mapping between Swift errors and the ABI's `WHARF_E_*` codes.
///
/// Codes added in a later minor version reach only plugins built against it: an older
/// plugin gets the code it was documented to get (a relayed stream was WHARF_E_BUSY before
/// 1.3, every timeout WHARF_E_TIMEOUT), so it stays correct.
enum StatusCode {
    static func of(_ error: StreamError?, abiMinor: UInt16) -> Int32 {
        guard let error else { return WHARF_OK }
        if abiMinor < 4, error == .writeBufferFull { return WHARF_E_BUFFER_FULL }
        if abiMinor < 3 {
            switch error {
            case .relayed, .notIdle: return WHARF_E_BUSY
            case .idleTimeout, .readTimeout, .lifetimeExceeded: return WHARF_E_TIMEOUT
            default: break
            }
        }
        return code(error)
    }

    private static func code(_ error: StreamError) -> Int32 {
        switch error {
        case .closed: WHARF_E_CLOSED
        case .busy: WHARF_E_BUSY
        case .relayed: WHARF_E_RELAYED
        case .notIdle: WHARF_E_NOT_IDLE
        case .limitExceeded: WHARF_E_LIMIT
        case .bufferFull: WHARF_E_BUFFER_FULL
        case .invalidArgument: WHARF_E_INVALID
        case .wrongThread: WHARF_E_WRONG_THREAD
        case .unsupported: WHARF_E_UNSUPPORTED
        case .connectionReset: WHARF_E_RESET
        case .io: WHARF_E_IO
        case .timedOut: WHARF_E_TIMEOUT
        case .idleTimeout: WHARF_E_IDLE_TIMEOUT
        case .readTimeout: WHARF_E_READ_TIMEOUT
        case .lifetimeExceeded: WHARF_E_LIFETIME
        case .cancelled: WHARF_E_CANCELLED
        case .shuttingDown: WHARF_E_SHUTDOWN
        case .refused: WHARF_E_REFUSED
        case .unresolved: WHARF_E_RESOLVE
        case .unreachable: WHARF_E_UNREACHABLE
        case .tlsFailed: WHARF_E_TLS
        case .writeBufferFull: WHARF_E_WRITE_FULL
        }
    }

    /// The text `wharf_host_api.strerror` returns, as a static C string: the matching
    /// `StreamError`'s own text, so each code is described in one place.
    static func describe(_ code: Int32) -> StaticString {
        switch code {
        case WHARF_OK: return "success"
        case WHARF_E_NOMEM: return "out of memory"
        default: return StreamError.allCases.first { Self.code($0) == code }?.text ?? "unknown error"
        }
    }
}
