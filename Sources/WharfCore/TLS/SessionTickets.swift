import CWharfTLS
import NIOConcurrencyHelpers
import NIOSSL

/// TLS session tickets that every worker can decrypt (CWharfTLS.h has the scheme): the
/// supervisor makes one secret at start and hands it to each worker with its config, so a
/// client that resumes may land on any worker, of this generation or the next.
///
/// Without a secret from a supervisor (`wharf run --single-process`) the process makes its
/// own at the first TLS context: tickets then work within that process.
public enum SessionTickets {
    /// How long one key issues tickets; a ticket stays good for up to twice this.
    static let rotationSeconds: UInt64 = 12 * 3600
    private static let configured = NIOLockedValueBox(false)

    /// A fresh 32-byte secret (the system's CSPRNG).
    public static func makeSecret() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// Sets the process's secret; call before any TLS context is made.
    public static func configure(secret: [UInt8]) {
        configured.withLockedValue { done in
            setSecret(secret)
            done = true
        }
    }

    private static func setSecret(_ secret: [UInt8]) {
        secret.withUnsafeBufferPointer { cwharf_tls_tickets_configure($0.baseAddress, $0.count, rotationSeconds) }
    }

    /// Turns `context`'s tickets over to the shared keys, or off (`enabled` false: clients
    /// then resume TLS 1.2 sessions from this process's session cache only).
    static func apply(to context: NIOSSLContext, enabled: Bool) {
        guard let pointer = sslContext(of: context) else {
            TLSLog.logger.warning("cannot reach the TLS context's ticket settings; each worker keeps its own ticket keys")
            return
        }
        guard enabled else { return cwharf_tls_tickets_disable(UnsafeMutableRawPointer(pointer)) }
        configured.withLockedValue { done in
            guard !done else { return }
            setSecret(makeSecret())
            done = true
        }
        cwharf_tls_tickets_install(UnsafeMutableRawPointer(pointer))
    }

    /// BoringSSL's `SSL_CTX` under a `NIOSSLContext`. NIOSSL keeps it private and offers
    /// neither ticket settings nor a session on a socket, so it is read by reflection, once
    /// per context at config load (off every hot path). If a NIOSSL release renames it,
    /// tickets fall back to BoringSSL's own per-process keys and a warning says so, and the
    /// relay pump leaves TLS to NIOSSL.
    static func sslContext(of context: NIOSSLContext) -> OpaquePointer? {
        Mirror(reflecting: context).children.first { $0.label == "sslContext" }?.value as? OpaquePointer
    }
}
