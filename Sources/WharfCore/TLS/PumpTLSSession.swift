import CWharfTLS
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A server TLS session run straight on the client's non-blocking socket
/// (`Sources/CWharfTLS/session.c`), by BoringSSL or the system's OpenSSL (`PumpTLSContexts`),
/// for the relay pump: the handshake and every record of a
/// relayed connection happen on the pump's thread with no NIO channel, NIOSSL handler or
/// memory BIO in between, as in HAProxy and nginx.
///
/// One thread at a time uses it: the pump while it handshakes or relays, the event loop in
/// between (the hand-offs go through the pump's command queue or the loop's task queue).
final class PumpTLSSession: @unchecked Sendable {
    enum Step: Equatable {
        case done
        case wantRead
        case wantWrite
        case failed(StreamError)
    }

    private let session: OpaquePointer
    /// Keeps the contexts the SNI choice may switch to alive as long as the session.
    private let tls: ServerTLS

    /// Nil if the library refuses (out of memory) or `tls` has no context the pump can use.
    init?(_ tls: ServerTLS, fd: CInt) {
        guard let contexts = tls.pumpContexts else { return nil }
        let chooser: cwharf_tls_context_for_name? = contexts.pointers.count < 2 ? nil : { arg, name in
            let tls = Unmanaged<ServerTLS>.fromOpaque(arg!).takeUnretainedValue()
            return UnsafeMutableRawPointer(tls.pumpContext(forServerName: name.map { String(cString: $0) }))
        }
        guard let session = cwharf_tls_session_accept(contexts.library, UnsafeMutableRawPointer(contexts.pointers[0]),
                                                      fd, chooser, Unmanaged.passUnretained(tls).toOpaque())
        else { return nil }
        self.session = session
        self.tls = tls
    }

    deinit { cwharf_tls_session_free(session) }

    func handshake() -> Step {
        switch cwharf_tls_session_handshake(session) {
        case 0: .done
        case CWHARF_TLS_WANT_READ: .wantRead
        case CWHARF_TLS_WANT_WRITE: .wantWrite
        case CWHARF_TLS_CLOSED: .failed(.closed)
        case CWHARF_TLS_SOCKET_ERROR: .failed(StreamError(socketErrno: errno))
        default: .failed(.tlsFailed)
        }
    }

    /// Plain bytes read (> 0), or one of CWharfTLS's `CWHARF_TLS_…` codes.
    @inline(__always)
    func read(into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        cwharf_tls_session_read(session, buffer, count)
    }

    /// Plain bytes taken (> 0), or one of CWharfTLS's `CWHARF_TLS_…` codes.
    @inline(__always)
    func write(_ bytes: UnsafeRawPointer, count: Int) -> Int {
        cwharf_tls_session_write(session, bytes, count)
    }

    /// Why the handshake failed, in the TLS library's words, for the operator's log.
    var failure: PumpTLSError {
        PumpTLSError(reason: cwharf_tls_session_error(session).map { String(cString: $0) } ?? "unknown")
    }

    /// Sends close_notify if the socket takes it now.
    func shutdown() { cwharf_tls_session_shutdown(session) }

    /// What the handshake established, as `wharf_stream_info` shows it, and the SNI name.
    var facts: (tls: TLSFacts, serverName: String?) {
        var protocolBytes: UnsafePointer<UInt8>?
        let alpnLength = cwharf_tls_session_alpn(session, &protocolBytes)
        let alpn = protocolBytes.map { String(decoding: UnsafeBufferPointer(start: $0, count: alpnLength), as: UTF8.self) }
        var der: UnsafeMutablePointer<UInt8>?
        let derLength = cwharf_tls_session_peer_certificate(session, &der)
        var peer: NIOSSLCertificate?
        if let der, derLength > 0 {
            peer = try? NIOSSLCertificate(bytes: Array(UnsafeBufferPointer(start: der, count: derLength)), format: .der)
        }
        cwharf_tls_session_free_bytes(session, der)
        let facts = TLSFacts(version: UInt32(cwharf_tls_session_version(session)), alpn: alpn ?? "",
                             peerSubject: TLSFacts.subject(of: peer))
        return (facts, cwharf_tls_session_server_name(session).map { String(cString: $0).lowercased() })
    }
}

/// A handshake the pump's TLS refused: the library's reason ("NO_SHARED_CIPHER", "no shared
/// cipher", ...).
struct PumpTLSError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
