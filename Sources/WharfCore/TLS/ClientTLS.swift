import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// TLS for an outgoing stream (a plugin's `wharf_tls_client_options`, or `wharf client --tls`). Contexts are cached per
/// distinct options (process-wide), so certificate files are read once, not per connect.
struct ClientTLS: Sendable {
    let context: NIOSSLContext
    let explicitServerName: String?

    struct Key: Hashable {
        var noVerify: Bool
        var caFile: String?
        var alpn: String?
        var certificateFile: String?
        var keyFile: String?
    }

    private static let cache = NIOLockedValueBox<[Key: NIOSSLContext]>([:])

    /// Nil (and the reason logged) if the options are unusable: an unreadable file, a key
    /// without a certificate.
    init?(_ key: Key, serverName: String?) {
        explicitServerName = serverName
        if let cached = Self.cache.withLockedValue({ $0[key] }) {
            context = cached
            return
        }
        do {
            let made = try Self.makeContext(key)
            Self.cache.withLockedValue { $0[key] = made }
            context = made
        } catch {
            TLSLog.logger.error("unusable upstream TLS options: \(error)")
            return nil
        }
    }

    private static func makeContext(_ key: Key) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if key.noVerify { configuration.certificateVerification = .none }
        if let ca = key.caFile {
            try readable(ca)
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        }
        if let alpn = key.alpn { configuration.applicationProtocols = alpn.split(separator: ",").map(String.init) }
        switch (key.certificateFile, key.keyFile) {
        case let (certificate?, privateKey?):
            try readable(certificate)
            try readable(privateKey)
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem))
        case (nil, nil): break
        default: throw ClientTLSError(description: "certificate_file and key_file go together")
        }
        return try NIOSSLContext(configuration: configuration)
    }

    private static func readable(_ file: String) throws {
        if let reason = FileAccess.unreadableReason(file) {
            throw ClientTLSError(description: "cannot read \(file): \(reason)")
        }
    }

    /// The name for SNI and verification: the configured one, else the connect host
    /// unless it is an IP address (SNI carries names only).
    func serverName(defaultingTo host: String?) -> String? {
        if let explicitServerName { return explicitServerName }
        guard let host, (try? SocketAddress(ipAddress: host, port: 0)) == nil else { return nil }
        return host
    }

    func makeHandler(serverName host: String?) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverName(defaultingTo: host))
    }
}

struct ClientTLSError: Error, CustomStringConvertible {
    var description: String
}
