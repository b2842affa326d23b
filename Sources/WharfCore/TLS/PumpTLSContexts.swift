import CWharfTLS
import NIOSSL

/// The TLS library the relay pump terminates a listener's TLS with (`tls.library`).
public enum PumpTLSLibrary: String, Sendable, CaseIterable {
    /// OpenSSL when the system has it (and it takes the listener's files), else BoringSSL.
    case auto
    /// The system's OpenSSL 3 (`libssl.so.3`, loaded at run time): a config error without it.
    case openssl
    /// The BoringSSL that NIOSSL builds in, the library of every other TLS connection.
    case boringssl
}

/// The `SSL_CTX`s the relay pump's sessions (`PumpTLSSession`) start from, one per
/// certificate of a listener (the first is the default, the rest are chosen by SNI), all of
/// one library:
/// - BoringSSL's are the ones under the listener's `NIOSSLContext`s (read by reflection, see
///   `SessionTickets.sslContext`), so both paths share certificates, settings and tickets;
/// - OpenSSL's are built here from the same files and settings, and freed with this object.
///
/// Read-only once made; sessions keep it alive through their `ServerTLS`.
final class PumpTLSContexts: @unchecked Sendable {
    /// `CWHARF_TLS_BORINGSSL` or `CWHARF_TLS_OPENSSL`.
    let library: Int32
    /// One per certificate, the listener's order.
    let pointers: [OpaquePointer]

    private init(library: Int32, pointers: [OpaquePointer]) {
        self.library = library
        self.pointers = pointers
        // SNI picks among the contexts from inside the handshake (the NIOSSL path reads the
        // name first, with its own handler): installed on the context every session starts on.
        if pointers.count > 1 { cwharf_tls_sni_install(library, UnsafeMutableRawPointer(pointers[0])) }
    }

    deinit {
        guard library == CWHARF_TLS_OPENSSL else { return }
        pointers.forEach { cwharf_openssl_context_free(UnsafeMutableRawPointer($0)) }
    }

    /// "OpenSSL 3.0.19 27 Jan 2026" or "BoringSSL (built in)", for the log.
    var libraryDescription: String {
        guard library == CWHARF_TLS_OPENSSL else { return "BoringSSL (built in)" }
        return cwharf_openssl_version().map { String(cString: $0) } ?? "OpenSSL"
    }

    /// BoringSSL's contexts under `contexts`; nil if NIOSSL's layout hides one.
    static func boringSSL(_ contexts: [NIOSSLContext]) -> PumpTLSContexts? {
        let pointers = contexts.compactMap(SessionTickets.sslContext(of:))
        guard pointers.count == contexts.count else { return nil }
        return PumpTLSContexts(library: CWHARF_TLS_BORINGSSL, pointers: pointers)
    }

    /// One certificate's files and the listener's settings, as `cwharf_openssl_settings`.
    struct Settings {
        var certificateFile: String
        var keyFile: String
        var clientCAFile: String?
        var clientAuth: Int32
        var minimumVersion: Int32
        var alpn: [String]
        var sessionTickets: Bool
    }

    /// OpenSSL contexts for each certificate, or why OpenSSL cannot serve them (not on the
    /// system, or it refuses a file: e.g. a key below the system's security level).
    static func openSSL(_ certificates: [Settings]) -> Result<PumpTLSContexts, OpenSSLRefusal> {
        if let missing = cwharf_openssl_load() { return .failure(OpenSSLRefusal(reason: String(cString: missing))) }
        var pointers: [OpaquePointer] = []
        for settings in certificates {
            switch make(settings) {
            case let .success(pointer): pointers.append(pointer)
            case let .failure(refusal):
                pointers.forEach { cwharf_openssl_context_free(UnsafeMutableRawPointer($0)) }
                return .failure(refusal)
            }
        }
        return .success(PumpTLSContexts(library: CWHARF_TLS_OPENSSL, pointers: pointers))
    }

    private static func make(_ settings: Settings) -> Result<OpaquePointer, OpenSSLRefusal> {
        let alpnWire = settings.alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        var error = [CChar](repeating: 0, count: 512)
        let context = settings.certificateFile.withCString { certificate in
            settings.keyFile.withCString { key in
                withOptionalCString(settings.clientCAFile) { clientCA in
                    alpnWire.withUnsafeBufferPointer { alpn in
                        var raw = cwharf_openssl_settings(
                            certificate_file: certificate, key_file: key, client_ca_file: clientCA,
                            client_auth: settings.clientAuth, min_version: settings.minimumVersion,
                            alpn: alpn.baseAddress, alpn_length: alpn.count,
                            session_tickets: settings.sessionTickets ? 1 : 0)
                        return cwharf_openssl_context_new(&raw, &error, error.count)
                    }
                }
            }
        }
        guard let context else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(OpenSSLRefusal(reason: reason))
        }
        return .success(OpaquePointer(context))
    }

    private static func withOptionalCString<T>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
        guard let string else { return body(nil) }
        return string.withCString(body)
    }
}

/// Why OpenSSL cannot serve a listener, in dlopen's or OpenSSL's words.
struct OpenSSLRefusal: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
