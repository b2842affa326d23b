import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An IPv4 or IPv6 network: `10.0.0.0/8`, `2001:db8::/32`, or one address (`127.0.0.2`).
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    /// 4 or 16 bytes, host bits cleared.
    let network: [UInt8]
    let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(of: String(parts[0])) else { return nil }
        let length: Int
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...bytes.count * 8).contains(parsed) else { return nil }
            length = parsed
        } else {
            length = bytes.count * 8
        }
        network = Self.masked(bytes, to: length)
        prefixLength = length
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        network.withUnsafeBytes { raw in
            _ = inet_ntop(network.count == 4 ? AF_INET : AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
        }
        let length = text.firstIndex(of: 0) ?? text.count
        return String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/\(prefixLength)"
    }

    /// Whether `address` is in this network. An IPv4 address arriving as IPv4-mapped IPv6
    /// (`::ffff:10.1.2.3`, on a dual-stack listener) is matched as IPv4.
    public func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if address.count == 16, network.count == 4, address[0..<10].allSatisfy({ $0 == 0 }),
           address[10] == 0xff, address[11] == 0xff {
            address = Array(address[12...])
        }
        return address.count == network.count && Self.masked(address, to: prefixLength) == network
    }

    static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    private static func masked(_ bytes: [UInt8], to length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(0xff >> bits)
        }
    }
}

/// A listener's `allow` and `deny` lists. A client in a `deny` network is refused; with an
/// `allow` list, so is every client outside all of its networks. Checked on the real client
/// address (the PROXY header's, when the listener accepts one) before any plugin sees it.
public struct AccessList: Sendable, Equatable {
    public var allow: [CIDR] = []
    public var deny: [CIDR] = []

    public init(allow: [CIDR] = [], deny: [CIDR] = []) {
        self.allow = allow
        self.deny = deny
    }

    public var isEmpty: Bool { allow.isEmpty && deny.isEmpty }

    public func permits(_ address: SocketAddress?) -> Bool {
        guard !isEmpty else { return true }
        guard let bytes = address.flatMap(Self.bytes(of:)) else { return allow.isEmpty }
        if deny.contains(where: { $0.contains(bytes) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(bytes) }
    }

    static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case let .v4(v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case let .v6(v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        default:
            return nil
        }
    }
}
