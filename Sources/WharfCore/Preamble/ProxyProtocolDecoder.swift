import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The client addresses a PROXY protocol header announced (nil: keep the socket's, as for
/// `LOCAL`, `UNKNOWN` or non-IP families).
public struct ProxyProtocolHeader: Sendable, Equatable {
    public var source: SocketAddress?
    public var destination: SocketAddress?
}

public struct ProxyProtocolError: Error, CustomStringConvertible {
    public var description: String
}

/// Reads the PROXY protocol header (v1 text or v2 binary, haproxy.org proxy-protocol.txt)
/// a load balancer in front sends first, on a listener with `proxy_protocol: accept`.
/// It passes the addresses on as a `ProxyProtocolHeader` event, hands any bytes after the
/// header to the next handler and removes itself. A malformed header is an error (the
/// connection closes); so is a connection that ends before the header does.
public final class ProxyProtocolDecoder: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix = Array("PROXY ".utf8)
    static let v1MaxLength = 107

    private var buffer: ByteBuffer?
    private var done = false

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        var incoming = Self.unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        do {
            guard let (header, length) = try Self.parse(buffer!.readableBytesView) else { return }
            done = true
            buffer!.moveReaderIndex(forwardBy: length)
            let rest = buffer!
            buffer = nil
            context.fireUserInboundEventTriggered(header)
            if rest.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            done = true
            buffer = nil
            context.fireErrorCaught(error)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, let event = event as? ChannelEvent, event == .inputClosed {
            done = true
            context.fireErrorCaught(ProxyProtocolError(description: "connection ended inside the PROXY header"))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The header and its length, nil if more bytes are needed; throws if malformed.
    static func parse(_ bytes: ByteBufferView) throws(ProxyProtocolError) -> (ProxyProtocolHeader, Int)? {
        let start = bytes.startIndex
        func prefix(_ expected: [UInt8]) -> Bool? { // nil: too short to tell
            let n = min(bytes.count, expected.count)
            guard bytes[start..<start + n].elementsEqual(expected[..<n]) else { return false }
            return n == expected.count ? true : nil
        }
        switch (prefix(v2Signature), prefix(v1Prefix)) {
        case (true, _): return try parseV2(bytes)
        case (_, true): return try parseV1(bytes)
        case (false, false): throw ProxyProtocolError(description: "no PROXY protocol header")
        default: return nil
        }
    }

    private static func parseV1(_ bytes: ByteBufferView) throws(ProxyProtocolError) -> (ProxyProtocolHeader, Int)? {
        guard let lf = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            if bytes.count >= v1MaxLength { throw ProxyProtocolError(description: "PROXY v1 line longer than 107 bytes") }
            return nil
        }
        let length = lf - bytes.startIndex + 1
        guard length <= v1MaxLength, lf > bytes.startIndex, bytes[lf - 1] == UInt8(ascii: "\r") else {
            throw ProxyProtocolError(description: "PROXY v1 line not ended by CRLF within 107 bytes")
        }
        let line = String(decoding: bytes[bytes.startIndex..<lf - 1], as: UTF8.self)
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if fields.count >= 2, fields[1] == "UNKNOWN" { return (ProxyProtocolHeader(), length) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6",
              let sourcePort = port(fields[4]), let destinationPort = port(fields[5]) else {
            throw ProxyProtocolError(description: "malformed PROXY v1 line \"\(line.prefix(107))\"")
        }
        let family = fields[1] == "TCP4" ? AF_INET : AF_INET6
        guard let source = address(fields[2], family: family, port: sourcePort),
              let destination = address(fields[3], family: family, port: destinationPort) else {
            throw ProxyProtocolError(description: "PROXY v1 addresses do not match \(fields[1]): \"\(line)\"")
        }
        return (ProxyProtocolHeader(source: source, destination: destination), length)
    }

    private static func parseV2(_ bytes: ByteBufferView) throws(ProxyProtocolError) -> (ProxyProtocolHeader, Int)? {
        guard bytes.count >= 16 else { return nil }
        let base = bytes.startIndex
        let versionCommand = bytes[base + 12]
        let familyProtocol = bytes[base + 13]
        let payload = Int(bytes[base + 14]) << 8 | Int(bytes[base + 15])
        guard versionCommand >> 4 == 2 else {
            throw ProxyProtocolError(description: "PROXY v2 header with version \(versionCommand >> 4)")
        }
        let command = versionCommand & 0x0F
        guard command <= 1 else { throw ProxyProtocolError(description: "PROXY v2 header with command \(command)") }
        guard bytes.count >= 16 + payload else { return nil }
        let length = 16 + payload
        // LOCAL (health checks from the balancer itself) and non-TCP/IP families keep the
        // socket's own addresses.
        guard command == 1 else { return (ProxyProtocolHeader(), length) }
        let addressLength: Int
        switch familyProtocol {
        case 0x11: addressLength = 12 // TCP over IPv4
        case 0x21: addressLength = 36 // TCP over IPv6
        case 0x00, 0x12, 0x22, 0x31, 0x32: return (ProxyProtocolHeader(), length)
        default: throw ProxyProtocolError(description: "PROXY v2 header with unknown family 0x\(String(familyProtocol, radix: 16))")
        }
        guard payload >= addressLength else {
            throw ProxyProtocolError(description: "PROXY v2 address block of \(payload) bytes, needs \(addressLength)")
        }
        let size = addressLength == 12 ? 4 : 16
        let addresses = Array(bytes[base + 16..<base + 16 + addressLength])
        let sourcePort = Int(addresses[2 * size]) << 8 | Int(addresses[2 * size + 1])
        let destinationPort = Int(addresses[2 * size + 2]) << 8 | Int(addresses[2 * size + 3])
        let source = socketAddress(Array(addresses[0..<size]), port: sourcePort)
        let destination = socketAddress(Array(addresses[size..<2 * size]), port: destinationPort)
        return (ProxyProtocolHeader(source: source, destination: destination), length)
    }

    private static func port(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let value = Int(text), value <= 65535 else { return nil }
        return value
    }

    private static func address(_ text: String, family: Int32, port: Int) -> SocketAddress? {
        var storage = in6_addr()
        guard inet_pton(family, text, &storage) == 1 else { return nil }
        return try? SocketAddress(ipAddress: text, port: port)
    }

    private static func socketAddress(_ bytes: [UInt8], port: Int) -> SocketAddress? {
        var text = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        let length = text.firstIndex(of: 0) ?? text.count
        return try? SocketAddress(ipAddress: String(decoding: text[..<length].map { UInt8(bitPattern: $0) },
                                                    as: UTF8.self), port: port)
    }
}
