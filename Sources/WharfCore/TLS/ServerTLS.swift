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

    init(defaultContext: NIOSSLContext, named: [NamedContext], startTLS: Bool) {
        self.defaultContext = defaultContext
        self.named = named
        self.startTLS = startTLS
    }

    /// Exact names first, then wildcards in config order, then the first certificate.
    func context(forServerName name: String?) -> NIOSSLContext {
        guard let name = name?.lowercased() else { return defaultContext }
        if let exact = named.first(where: { $0.pattern == name }) { return exact.context }
        let wildcard = named.first { entry in
            entry.pattern.hasPrefix("*.") && name.count > entry.pattern.count - 1
                && name.hasSuffix(entry.pattern.dropFirst())
        }
        return wildcard?.context ?? defaultContext
    }
}
