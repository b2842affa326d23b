import NIOCore
import Testing
@testable import WharfCore

/// `connect_relay` parses an upstream's IP literal once per loop, not once per connection.
struct UpstreamAddressCacheTests {
    @Test func anIPLiteralIsParsed() throws {
        var cache = UpstreamAddressCache()
        let first = cache.address(host: "127.0.0.1", port: 6379)
        #expect(first == (try SocketAddress(ipAddress: "127.0.0.1", port: 6379)))
        #expect(cache.address(host: "127.0.0.1", port: 6380)?.port == 6380, "the port is part of the key")
        #expect(cache.address(host: "::1", port: 6379) == (try SocketAddress(ipAddress: "::1", port: 6379)))
    }

    @Test func aHostNameIsNotAnAddress() {
        var cache = UpstreamAddressCache()
        #expect(cache.address(host: "cache.internal", port: 6379) == nil)
        #expect(cache.address(host: "cache.internal", port: 6379) == nil, "remembered as none")
    }

    @Test func moreUpstreamsThanItHoldsStillResolveEach() throws {
        var cache = UpstreamAddressCache()
        for round in 0..<3 {
            for index in 0..<(UpstreamAddressCache.capacity * 2) {
                let host = "10.0.0.\(index + 1)"
                #expect(cache.address(host: host, port: 80) == (try SocketAddress(ipAddress: host, port: 80)),
                        "round \(round), \(host)")
            }
        }
    }
}
