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
        /// The certificate's place in the listener's list (0: the default one).
        let certificate: Int
    }

    let defaultContext: NIOSSLContext
    let named: [NamedContext]
    /// Plain at accept; the plugin upgrades with start_tls (STARTTLS-style protocols).
    public let startTLS: Bool
    /// The contexts the relay pump's own sessions (`PumpTLSSession`) use, one per
    /// certificate; nil if neither library can serve them there.
    let pumpContexts: PumpTLSContexts?

    init(defaultContext: NIOSSLContext, named: [NamedContext], startTLS: Bool, pumpContexts: PumpTLSContexts?) {
        self.defaultContext = defaultContext
        self.named = named
        self.startTLS = startTLS
        self.pumpContexts = pumpContexts
    }

    /// Whether the relay pump can terminate this listener's TLS itself.
    var pumpCanTerminate: Bool { pumpContexts != nil && !startTLS }

    /// Exact names first, then wildcards in config order, then the first certificate.
    func context(forServerName name: String?) -> NIOSSLContext {
        index(forServerName: name).map { named[$0].context } ?? defaultContext
    }

    /// `context(forServerName:)`'s counterpart among the pump's contexts.
    func pumpContext(forServerName name: String?) -> OpaquePointer? {
        guard let pumpContexts else { return nil }
        return pumpContexts.pointers[index(forServerName: name).map { named[$0].certificate } ?? 0]
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
