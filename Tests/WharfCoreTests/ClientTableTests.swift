import NIOCore
import Testing
@testable import WharfCore

/// The per-client table with an injected clock: connection caps across lanes, the token
/// bucket, eviction of idle clients, and a dead worker's lane.
@Suite struct ClientTableTests {
    static func key(_ address: String) throws -> ClientKey {
        try #require(ClientKey(try SocketAddress(ipAddress: address, port: 1)))
    }

    @Test func capsOpenConnectionsOverEveryLane() throws {
        let table = try #require(ClientTable.local(capacity: 64))
        let limits = ClientLimits(maxConnections: 2)
        let client = try Self.key("192.0.2.1")
        #expect(table.admit(client, lane: 0, limits: limits, now: 0) == .admitted)
        #expect(table.admit(client, lane: 5, limits: limits, now: 0) == .admitted)
        #expect(table.admit(client, lane: 0, limits: limits, now: 0) == .overConnections)
        #expect(table.admit(try Self.key("192.0.2.2"), lane: 0, limits: limits, now: 0) == .admitted)
        table.release(client, lane: 5)
        #expect(table.admit(client, lane: 0, limits: limits, now: 0) == .admitted)
        table.clearLane(0)
        #expect(table.openConnections(of: client) == 0, "a dead worker's connections no longer count")
    }

    @Test func ratesAreATokenBucket() throws {
        let table = try #require(ClientTable.local(capacity: 64))
        let limits = ClientLimits(connectionsPerSecond: 10, burst: 3)
        let client = try Self.key("2001:db8::1")
        for _ in 0..<3 { #expect(table.admit(client, lane: 0, limits: limits, now: 1000) == .admitted) }
        #expect(table.admit(client, lane: 0, limits: limits, now: 1000) == .overRate)
        #expect(table.admit(client, lane: 0, limits: limits, now: 1050) == .overRate, "half a token")
        #expect(table.admit(client, lane: 0, limits: limits, now: 1100) == .admitted, "one token per 100 ms")
        #expect(table.admit(client, lane: 0, limits: limits, now: 5000) == .admitted)
        #expect(table.admit(client, lane: 0, limits: limits, now: 5000) == .admitted)
        #expect(table.admit(client, lane: 0, limits: limits, now: 5000) == .admitted)
        #expect(table.admit(client, lane: 0, limits: limits, now: 5000) == .overRate, "the bucket holds `burst` at most")
    }

    @Test func idleClientsAreEvictedAndBusyOnesKept() throws {
        let table = try #require(ClientTable.local(capacity: 64))
        let limits = ClientLimits(maxConnections: 1)
        let busy = try Self.key("10.0.0.1")
        #expect(table.admit(busy, lane: 0, limits: limits, now: 0) == .admitted)
        for index in 0..<1000 {
            let outcome = table.admit(try Self.key("10.1.\(index / 250).\(index % 250)"), lane: 0,
                                      limits: ClientLimits(maxConnections: 5), now: UInt64(index))
            #expect(outcome == .admitted || outcome == .untracked)
            table.release(try Self.key("10.1.\(index / 250).\(index % 250)"), lane: 0)
        }
        #expect(table.evictions > 0)
        #expect(table.admit(busy, lane: 0, limits: limits, now: 2000) == .overConnections, "never evicted while open")
    }

    @Test func dualStackAddressesKeyAsTheirIPv4Client() throws {
        #expect(try Self.key("::ffff:192.0.2.1") == Self.key("192.0.2.1"))
        #expect(try Self.key("2001:db8::1") != Self.key("2001:db8::2"))
    }
}
