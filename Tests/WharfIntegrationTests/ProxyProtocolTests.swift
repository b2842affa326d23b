import Foundation
import WharfTestSupport
import Testing

/// PROXY protocol both ways: a listener with `proxy_protocol: accept` (checked with the
/// spec's own example headers) and the proxy plugin's outgoing header (checked byte-exact).
@Suite struct ProxyProtocolTests {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Who reads the header: NIOSSL's pipeline has a decoder (`whoami`); for a plugin that
    /// says it relays at once (`whoami_pump`), the relay pump reads it before the stream opens.
    static let readers = [false, true]

    func acceptingWhoami(pump: Bool = false) throws -> RunningWharf {
        let whoami = pump ? try FixturePlugins.build("whoami_pump", source: "whoami", define: "VARIANT_RELAYS_AT_ONCE")
            : try FixturePlugins.build("whoami", source: "whoami")
        let wharf = try RunningWharf(config: """
            plugins:
              whoami: {path: \(whoami)}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: whoami, proxy_protocol: accept, handshake_timeout_ms: 2000}

            """)
        if pump { #expect(eventually { wharf.stderr.contains("accepted by the relay pump") }, "\(wharf.stderr)") }
        return wharf
    }

    /// Sends `header` + "hi\n" and returns the whoami line and the echo.
    func exchange(_ header: [UInt8], port: Int) throws -> (String, String) {
        let client = try TestSocket(port: port)
        try client.send(header + Array("hi\n".utf8))
        return (try client.receiveLine(), try client.receiveLine())
    }

    @Test(arguments: Self.readers) func acceptsTheSpecsV1Examples(pump: Bool) throws {
        let wharf = try acceptingWhoami(pump: pump)
        let port = try wharf.port("whoami")
        let (v4, echo) = try exchange(Array("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".utf8), port: port)
        #expect(v4.hasPrefix("peer=192.168.0.1:56324 local=192.168.0.11:443 proxied=1 "))
        #expect(echo == "hi\n", "bytes after the header reach the plugin")
        let all = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        let (v6, _) = try exchange(Array("PROXY TCP6 \(all) \(all) 65535 65535\r\n".utf8), port: port)
        #expect(v6.hasPrefix("peer=\(all):65535 local=\(all):65535 proxied=1 "))
        let (unknown, _) = try exchange(Array("PROXY UNKNOWN\r\n".utf8), port: port)
        #expect(unknown.hasPrefix("peer=127.0.0.1:"))
        #expect(unknown.contains("proxied=0"))
    }

    @Test(arguments: Self.readers) func acceptsV2WithTLVsAndLocal(pump: Bool) throws {
        let wharf = try acceptingWhoami(pump: pump)
        let port = try wharf.port("whoami")
        // The v1 example's addresses in binary, plus a 7-byte TLV (PP2_TYPE_AUTHORITY "a.test").
        let addresses: [UInt8] = [192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB]
        let tlv: [UInt8] = [0x02, 0x00, 0x06] + Array("a.test".utf8)
        let length = addresses.count + tlv.count
        let header = Self.v2Signature + [0x21, 0x11, UInt8(length >> 8), UInt8(length & 0xFF)] + addresses + tlv
        let (line, echo) = try exchange(header, port: port)
        #expect(line.hasPrefix("peer=192.168.0.1:56324 local=192.168.0.11:443 proxied=1 "))
        #expect(echo == "hi\n")
        let (local, _) = try exchange(Self.v2Signature + [0x20, 0x00, 0x00, 0x00], port: port)
        #expect(local.hasPrefix("peer=127.0.0.1:") && local.contains("proxied=0"), "LOCAL keeps the socket's addresses")
    }

    @Test(arguments: ["GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n",
                      "PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n", "PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n",
                      "PROXY TCP4 10.0.0.1 10.0.0.2 1 99999\r\n"], Self.readers)
    func malformedHeadersCloseTheConnection(header: String, pump: Bool) throws {
        let wharf = try acceptingWhoami(pump: pump)
        let client = try TestSocket(port: try wharf.port("whoami"))
        try client.send(header)
        let (received, _) = try client.receiveUntilClose()
        #expect(received.isEmpty, "the plugin never saw it")
        #expect(eventually { wharf.stderr.contains("bad PROXY protocol header") })
    }

    @Test(arguments: Self.readers) func aClientThatSendsNoHeaderIsClosedAfterTheTimeout(pump: Bool) throws {
        let wharf = try acceptingWhoami(pump: pump)
        let client = try TestSocket(port: try wharf.port("whoami"))
        let started = Date()
        #expect(client.isClosedByPeer())
        #expect(Date().timeIntervalSince(started) < 6)
    }

    /// What the proxy sends its upstream before the client's bytes; `read` takes exactly the header.
    func captureHeader(version: String, read: @escaping @Sendable (Int32) -> [UInt8]) throws
        -> (header: [UInt8], clientPort: Int, frontPort: Int) {
        let captured = NSLock()
        nonisolated(unsafe) var bytes: [UInt8] = []
        let backend = TestServer { fd in
            let header = read(fd)
            captured.withLock { bytes = header }
            TestServer.write(fd, Array("ok\n".utf8))
        }
        let front = try RunningWharf(config: gatewayConfig(
            plugins: "  proxy: {path: proxy, config: {upstreams: [\"127.0.0.1:\(backend.port)\"], proxy_protocol: \(version)}}\n",
            listeners: ["proxy"]))
        let frontPort = try front.port("proxy")
        let client = try TestSocket(port: frontPort)
        #expect(try client.receiveLine() == "ok\n")
        return (captured.withLock { bytes }, client.localPort, frontPort)
    }

    @Test func sendsV1ByteExact() throws {
        let (header, clientPort, frontPort) = try captureHeader(version: "v1") { fd in
            var line: [UInt8] = []
            while line.suffix(2) != [13, 10], line.count < 108 {
                let byte = TestServer.read(fd, count: 1)
                if byte.isEmpty { break }
                line += byte
            }
            return line
        }
        #expect(String(decoding: header, as: UTF8.self) == "PROXY TCP4 127.0.0.1 127.0.0.1 \(clientPort) \(frontPort)\r\n")
    }

    @Test func sendsV2ByteExact() throws {
        let (header, clientPort, frontPort) = try captureHeader(version: "v2") { TestServer.read($0, count: 28) }
        let expected = Self.v2Signature + [0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 1, 127, 0, 0, 1,
                                           UInt8(clientPort >> 8), UInt8(clientPort & 0xFF),
                                           UInt8(frontPort >> 8), UInt8(frontPort & 0xFF)]
        #expect(header == expected)
    }

    @Test func theRealClientAddressSurvivesAChainOfGateways() throws {
        let back = try acceptingWhoami()
        let front = try RunningWharf(config: gatewayConfig(
            plugins: "  proxy: {path: proxy, config: {upstreams: [\"127.0.0.1:\(try back.port("whoami"))\"], proxy_protocol: v2}}\n",
            listeners: ["proxy"]))
        let frontPort = try front.port("proxy")
        let client = try TestSocket(port: frontPort)
        let line = try client.receiveLine()
        #expect(line.hasPrefix("peer=127.0.0.1:\(client.localPort) local=127.0.0.1:\(frontPort) proxied=1 "))
    }
}
