import NIOCore
import Testing
@testable import WharfCore

@Suite struct CIDRTests {
    @Test func parsesAddressesAndNetworks() throws {
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8", "host bits are cleared")
        #expect(CIDR("127.0.0.2")?.description == "127.0.0.2/32")
        #expect(CIDR("2001:db8::1/32")?.description == "2001:db8::/32")
        #expect(CIDR("::1")?.description == "::1/128")
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "example.com", "10.0.0.0/", "/8", ""] {
            #expect(CIDR(bad) == nil, "\(bad)")
        }
    }

    @Test func matchesByPrefixAndMapsIPv4InIPv6() throws {
        let network = try #require(CIDR("192.0.2.0/25"))
        #expect(network.contains(CIDR.bytes(of: "192.0.2.127")!))
        #expect(!network.contains(CIDR.bytes(of: "192.0.2.128")!))
        #expect(network.contains(CIDR.bytes(of: "::ffff:192.0.2.5")!), "IPv4-mapped IPv6 is IPv4")
        #expect(!network.contains(CIDR.bytes(of: "2001:db8::1")!))
        #expect(try #require(CIDR("0.0.0.0/0")).contains(CIDR.bytes(of: "203.0.113.9")!))
    }

    @Test func denyWinsAndAnAllowListIsExclusive() throws {
        let list = AccessList(allow: [CIDR("10.0.0.0/8")!], deny: [CIDR("10.9.0.0/16")!])
        #expect(list.permits(try SocketAddress(ipAddress: "10.1.1.1", port: 1)))
        #expect(!list.permits(try SocketAddress(ipAddress: "10.9.1.1", port: 1)))
        #expect(!list.permits(try SocketAddress(ipAddress: "192.168.1.1", port: 1)))
        #expect(AccessList().permits(try SocketAddress(ipAddress: "192.168.1.1", port: 1)))
        #expect(AccessList(deny: [CIDR("::1")!]).permits(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
    }

    @Test func badNetworksAreConfigErrorsAtTheirLine() {
        let text = "plugins: {e: {path: echo}}\nlisteners:\n  - {port: 1, plugin: e, deny: [10.0.0.0/8, 300.1.1.1]}\n"
        do {
            _ = try ConfigLoader.parse(text, file: "wharf.yaml")
            Issue.record("no error")
        } catch {
            #expect(error.description == #"wharf.yaml:3:45: listeners[0].deny[1]: expected an address or a network like 10.0.0.0/8 or 2001:db8::/32, got "300.1.1.1""#)
        }
    }
}
