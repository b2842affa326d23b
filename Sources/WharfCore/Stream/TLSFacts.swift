import NIOSSL

/// A successful handshake's facts, as `wharf_stream_info` shows them (the SNI name is
/// `ConnectionFacts.serverName`, known before the handshake ends).
public struct TLSFacts: Sendable, Equatable {
    public var version: UInt32 = 0
    public var alpn = ""
    public var peerSubject = ""

    static func wireVersion(_ version: TLSVersion?) -> UInt32 {
        switch version {
        case .tlsv1: 0x0301
        case .tlsv11: 0x0302
        case .tlsv12: 0x0303
        case .tlsv13: 0x0304
        case nil: 0
        }
    }

    /// "CN=alice,O=Example": the subject's attributes in certificate order.
    static func subject(of certificate: NIOSSLCertificate?) -> String {
        guard let certificate else { return "" }
        return certificate.subjectName.map { "\(shortName(of: $0.type))=\($0.value)" }.joined(separator: ",")
    }

    private static func shortName(of type: SSLCertificateNameType) -> String {
        switch type {
        case .commonName: "CN"
        case .organization: "O"
        case .organizationalUnit: "OU"
        case .country: "C"
        case .state: "ST"
        case .city: "L"
        case .emailAddress: "emailAddress"
        case .userId: "UID"
        default: "OID"
        }
    }
}
