import CWharfTLS
import NIOSSL
import Yams

/// Reads a listener's `tls:` block and builds its contexts now, so an unreadable file, a
/// key that does not match its certificate or a bad CA is a config error naming the file
/// and the key, reported by `wharf check` and before anything starts.
///
///     tls:
///       certificate: site.pem          # chain, leaf first
///       key: site.key
///       certificates:                  # more, chosen by SNI
///         - {certificate: b.pem, key: b.key, server_names: [b.example, "*.b.example"]}
///       client_ca: clients.pem         # verify client certificates (mTLS)
///       client_auth: require           # none | optional | require (the default with client_ca)
///       min_version: "1.2"             # 1.2 (default) | 1.3
///       alpn: [h2, http/1.1]
///       starttls: false                # true: plain at accept, upgraded by start_tls
///       session_tickets: true          # TLS 1.3 and 1.2 tickets, keys shared by all workers
///       library: auto                  # the relay pump's TLS: auto | openssl | boringssl
enum ServerTLSLoader {
    static let keys = ["certificate", "key", "certificates", "client_ca", "client_auth", "min_version", "alpn",
                       "starttls", "session_tickets", "library"]
    static let certificateKeys = ["certificate", "key", "server_names"]

    private struct Identity {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var names: [String]
        var keyNode: Node
        var path: String
        var certificateFile: String
        var keyFile: String
    }

    static func load(_ node: Node, _ path: String, reader: YAMLReader,
                     baseDirectory: String) throws(ConfigError) -> ServerTLS {
        var certificateNode: Node?
        var keyNode: Node?
        var extraNodes: Node?
        var clientCA: (file: String, node: Node)?
        var clientAuth: (value: String, node: Node)?
        var minimum = TLSVersion.tlsv12
        var alpn: [String] = []
        var startTLS = false
        var sessionTickets = true
        var library = (value: PumpTLSLibrary.auto, node: node)
        for (key, value) in try reader.mapping(node, path, allowed: keys) {
            let keyPath = "\(path).\(key)"
            switch key {
            case "certificate": certificateNode = value
            case "key": keyNode = value
            case "certificates": extraNodes = value
            case "client_ca": clientCA = (resolve(try reader.string(value, keyPath), baseDirectory), value)
            case "client_auth": clientAuth = (try reader.string(value, keyPath), value)
            case "min_version":
                guard case let .scalar(scalar) = value, ["1.2", "1.3"].contains(scalar.string) else {
                    throw reader.fail(value, keyPath, "expected \"1.2\" or \"1.3\", got \(reader.describe(value))")
                }
                minimum = scalar.string == "1.3" ? .tlsv13 : .tlsv12
            case "alpn": alpn = try reader.stringList(value, keyPath)
            case "session_tickets": sessionTickets = try reader.bool(value, keyPath)
            case "library":
                let text = try reader.string(value, keyPath)
                guard let choice = PumpTLSLibrary(rawValue: text) else {
                    throw reader.fail(value, keyPath, "expected auto, openssl or boringssl, got \"\(text)\"")
                }
                library = (choice, value)
            default: startTLS = try reader.bool(value, keyPath)
            }
        }
        guard let certificateNode, let keyNode else {
            throw reader.fail(node, path, "'certificate' and 'key' are required")
        }
        var identities = [try identity(certificateNode, keyNode, nil, path, reader: reader, baseDirectory: baseDirectory)]
        if let extraNodes {
            guard case let .sequence(items) = extraNodes else {
                throw reader.fail(extraNodes, "\(path).certificates", "expected a list of {certificate, key, server_names}")
            }
            for (index, item) in items.enumerated() {
                let itemPath = "\(path).certificates[\(index)]"
                var fields: [String: Node] = [:]
                for (key, value) in try reader.mapping(item, itemPath, allowed: certificateKeys) { fields[key] = value }
                guard let certificate = fields["certificate"], let key = fields["key"] else {
                    throw reader.fail(item, itemPath, "'certificate' and 'key' are required")
                }
                let names = try fields["server_names"].map { node throws(ConfigError) in
                    try reader.stringList(node, "\(itemPath).server_names").map { $0.lowercased() }
                }
                identities.append(try identity(certificate, key, names, itemPath, reader: reader,
                                               baseDirectory: baseDirectory))
            }
        }

        var verification: CertificateVerification = .none
        var trustRoots: NIOSSLTrustRoots?
        if let clientCA {
            try checkReadable(clientCA.file, clientCA.node, "\(path).client_ca", reader: reader)
            do {
                trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA.file))
            } catch {
                throw reader.fail(clientCA.node, "\(path).client_ca", "\(clientCA.file): not a PEM certificate bundle")
            }
            verification = .noHostnameVerification
        }
        var optionalClientCertificate = false
        if let clientAuth {
            switch clientAuth.value {
            case "none": verification = CertificateVerification.none
            case "optional", "require":
                guard trustRoots != nil else {
                    throw reader.fail(clientAuth.node, "\(path).client_auth", "needs client_ca to verify against")
                }
                optionalClientCertificate = clientAuth.value == "optional"
            default:
                throw reader.fail(clientAuth.node, "\(path).client_auth",
                                  "expected none, optional or require, got \"\(clientAuth.value)\"")
            }
        }

        func makeContext(_ identity: Identity) throws(ConfigError) -> NIOSSLContext {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key))
            configuration.minimumTLSVersion = minimum
            configuration.certificateVerification = verification
            if let trustRoots { configuration.trustRoots = trustRoots }
            configuration.applicationProtocols = alpn
            if optionalClientCertificate { configuration.certificateVerification = .optionalVerification }
            do {
                let context = try NIOSSLContext(configuration: configuration)
                SessionTickets.apply(to: context, enabled: sessionTickets)
                return context
            } catch {
                throw reader.fail(identity.keyNode, "\(identity.path).key",
                                  "the key does not match the certificate (\(error))")
            }
        }
        var named: [ServerTLS.NamedContext] = []
        let contexts = try identities.map { identity throws(ConfigError) in try makeContext(identity) }
        for (index, (identity, context)) in zip(identities, contexts).enumerated() {
            named += identity.names.map { ServerTLS.NamedContext(pattern: $0, context: context, certificate: index) }
        }
        let clientAuthMode = switch (trustRoots, verification, optionalClientCertificate) {
        case (nil, _, _), (_, .none, _): CWHARF_TLS_CLIENT_AUTH_NONE
        case (_, _, true): CWHARF_TLS_CLIENT_AUTH_OPTIONAL
        default: CWHARF_TLS_CLIENT_AUTH_REQUIRE
        }
        let settings = identities.map { identity in
            PumpTLSContexts.Settings(certificateFile: identity.certificateFile, keyFile: identity.keyFile,
                                     clientCAFile: clientCA?.file, clientAuth: clientAuthMode,
                                     minimumVersion: minimum == .tlsv13 ? 0x0304 : 0x0303, alpn: alpn,
                                     sessionTickets: sessionTickets)
        }
        let pump = try pumpContexts(library, settings: settings, contexts: contexts,
                                    signsWithRSA: identities.contains { isRSA($0.chain[0]) }, path: path, reader: reader)
        return ServerTLS(defaultContext: contexts[0], named: named, startTLS: startTLS, pumpContexts: pump)
    }

    /// The relay pump's contexts in the library asked for. `auto` takes OpenSSL for a listener
    /// with an RSA certificate, when the system has OpenSSL and it accepts the files (a system
    /// policy may refuse a weak key that BoringSSL takes), else BoringSSL, saying why in the
    /// log; `openssl` makes either a config error. Why by key type: measured side by side
    /// (bench/README.md), OpenSSL 3's RSA signs a full handshake for 22% less CPU (AVX-512
    /// IFMA where the CPU has it), while BoringSSL spends less on ECDSA handshakes (−32%),
    /// TLS 1.3 resumptions (−15%), bulk records (−18%) and idle memory (7 KB against 18).
    private static func pumpContexts(_ library: (value: PumpTLSLibrary, node: Node),
                                     settings: [PumpTLSContexts.Settings], contexts: [NIOSSLContext],
                                     signsWithRSA: Bool, path: String,
                                     reader: YAMLReader) throws(ConfigError) -> PumpTLSContexts? {
        if library.value == .openssl || (library.value == .auto && signsWithRSA) {
            switch PumpTLSContexts.openSSL(settings) {
            case let .success(openSSL): return openSSL
            case let .failure(refusal) where library.value == .openssl:
                throw reader.fail(library.node, "\(path).library", "OpenSSL cannot serve this listener: \(refusal)")
            case let .failure(refusal):
                TLSLog.logger.notice("\(path): the relay pump's TLS uses BoringSSL: OpenSSL cannot serve it (\(refusal))")
            }
        }
        return PumpTLSContexts.boringSSL(contexts)
    }

    private static func identity(_ certificateNode: Node, _ keyNode: Node, _ names: [String]?, _ path: String,
                                 reader: YAMLReader, baseDirectory: String) throws(ConfigError) -> Identity {
        let certificatePath = resolve(try reader.string(certificateNode, "\(path).certificate"), baseDirectory)
        let keyPath = resolve(try reader.string(keyNode, "\(path).key"), baseDirectory)
        try checkReadable(certificatePath, certificateNode, "\(path).certificate", reader: reader)
        try checkReadable(keyPath, keyNode, "\(path).key", reader: reader)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw reader.fail(certificateNode, "\(path).certificate", "\(certificatePath): not a PEM certificate")
        }
        guard let leaf = chain.first else {
            throw reader.fail(certificateNode, "\(path).certificate", "\(certificatePath): no certificate in the file")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw reader.fail(keyNode, "\(path).key", "\(keyPath): not a PEM private key (or it is encrypted)")
        }
        return Identity(chain: chain, key: key, names: names ?? dnsNames(of: leaf), keyNode: keyNode, path: path,
                        certificateFile: certificatePath, keyFile: keyPath)
    }

    /// Whether the certificate's key is RSA: its SubjectPublicKeyInfo names rsaEncryption
    /// (OID 1.2.840.113549.1.1.1, DER `06 09 2A 86 48 86 F7 0D 01 01 01`).
    private static func isRSA(_ certificate: NIOSSLCertificate) -> Bool {
        let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
        guard let spki = try? certificate.extractPublicKey().toSPKIBytes(), spki.count > rsaEncryption.count else {
            return false
        }
        // The algorithm comes first, after the two SEQUENCE headers (at most 8 bytes).
        return (0...min(8, spki.count - rsaEncryption.count)).contains { start in
            spki[start..<start + rsaEncryption.count].elementsEqual(rsaEncryption)
        }
    }

    /// The certificate's DNS subject alternative names: what SNI selects it by by default.
    private static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .dnsName else { return nil }
            return String(decoding: Array(name.contents), as: UTF8.self).lowercased()
        }
    }

    private static func checkReadable(_ file: String, _ node: Node, _ path: String,
                                      reader: YAMLReader) throws(ConfigError) {
        if let reason = FileAccess.unreadableReason(file) {
            throw reader.fail(node, path, "cannot read \(file): \(reason)")
        }
    }

    static func resolve(_ file: String, _ baseDirectory: String) -> String {
        file.hasPrefix("/") ? file : "\(baseDirectory)/\(file)"
    }
}
