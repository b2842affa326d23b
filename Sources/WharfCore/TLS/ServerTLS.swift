import CWharfTLS
import NIOCore
import NIOSSL

/// A listener's TLS: one context per certificate, chosen by the name the client asks for
/// (SNI), plus whether the listener terminates TLS at accept or waits for `start_tls`.
public final class ServerTLS: Sendable {
    struct NamedContext: Sendable {
        /// Lowercased; `*.example` matches any subdomain of example.
        let pattern: String
        let context: NIOSSLContext
    }

    let defaultContext: NIOSSLContext
    let named: [NamedContext]
    /// Plain at accept; the plugin upgrades with start_tls (STARTTLS-style protocols).
    public let startTLS: Bool

    /// The BoringSSL contexts under `defaultContext` and `named`, for the relay pump's own
    /// TLS sessions (`PumpTLSSession`); nil if NIOSSL's layout hides one.
    var pumpContext: OpaquePointer? { pumpContexts.first?.pointer }
    /// The default context's first, then `named`'s in order.
    private let pumpContexts: [BoringContext]

    /// A BoringSSL `SSL_CTX`: read-only once configured, safe to share between threads.
    private struct BoringContext: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    init(defaultContext: NIOSSLContext, named: [NamedContext], startTLS: Bool) {
        self.defaultContext = defaultContext
        self.named = named
        self.startTLS = startTLS
        let pointers = named.compactMap { SessionTickets.sslContext(of: $0.context) }
        if let base = SessionTickets.sslContext(of: defaultContext), pointers.count == named.count {
            pumpContexts = ([base] + pointers).map(BoringContext.init)
            // SNI picks among the contexts from inside the handshake (the NIOSSL path reads
            // the name first, with its own handler).
            if !named.isEmpty { cwharf_tls_sni_install(UnsafeMutableRawPointer(base)) }
        } else {
            pumpContexts = []
        }
    }

    /// Whether the relay pump can terminate this listener's TLS itself.
    var pumpCanTerminate: Bool { pumpContext != nil && !startTLS }

    /// Exact names first, then wildcards in config order, then the first certificate.
    func context(forServerName name: String?) -> NIOSSLContext {
        index(forServerName: name).map { named[$0].context } ?? defaultContext
    }

    /// `context(forServerName:)`'s BoringSSL context, for the pump's sessions.
    func pumpContext(forServerName name: String?) -> OpaquePointer? {
        index(forServerName: name).map { pumpContexts[$0 + 1].pointer } ?? pumpContext
    }

    private func index(forServerName name: String?) -> Int? {
        guard let name = name?.lowercased() else { return nil }
        if let exact = named.firstIndex(where: { $0.pattern == name }) { return exact }
        return named.firstIndex { entry in
            entry.pattern.hasPrefix("*.") && name.count > entry.pattern.count - 1
                && name.hasSuffix(entry.pattern.dropFirst())
        }
    }
}
