import Foundation
import Testing
import WharfTestSupport

/// The listener's limits on the real binary: each closes exactly the offending connection
/// at its deadline (± 10%), with the reason in both the plugin's close notification and
/// the log; keepalive and the backlog as the kernel reports them; the 1.3 timers.
@Suite(.serialized) struct TimeoutTests {
    static func clockGateway(_ limits: String) throws -> RunningWharf {
        let library = try FixturePlugins.build("clock", source: "clock")
        return try RunningWharf(config: """
            plugins:
              clock: {path: \(library)}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: clock, \(limits)}
            """)
    }

    /// Seconds from `start` until the peer closes `socket`.
    static func secondsUntilClosed(_ socket: TestSocket, since start: Date) throws -> Double {
        _ = try socket.receiveUntilClose()
        return Date().timeIntervalSince(start)
    }

    /// A round trip every 50 ms until the server closes; how many were answered.
    static func pingUntilClosed(_ client: TestSocket) -> Int {
        var round = 0
        while (try? client.send("m\(round)\n")) != nil, (try? client.receiveLine()) == "m\(round)\n" {
            round += 1
            usleep(50_000)
        }
        return round
    }

    static func expectNear(_ seconds: Double, _ target: Double, _ what: String) {
        #expect(seconds >= target * 0.9 && seconds <= target * 1.1, "\(what): closed after \(seconds) s, expected \(target) s ± 10%")
    }

    @Test func aSilentConnectionIsClosedAtTheIdleTimeout() throws {
        let wharf = try Self.clockGateway("idle_timeout_ms: 1000")
        let start = Date()
        let silent = try TestSocket(port: try wharf.port("clock"))
        Self.expectNear(try Self.secondsUntilClosed(silent, since: start), 1.0, "idle")
        #expect(eventually { wharf.stderr.contains("closed: idle timeout (-19)") }, "the plugin's close notification")
        #expect(eventually { wharf.stderr.contains("connection closed: idle_timeout_ms passed") }, "the gateway's log line")
    }

    @Test func aSlowlorisClientIsCutWhileANormalClientIsServed() throws {
        let wharf = try Self.clockGateway("read_timeout_ms: 1000, idle_timeout_ms: 60000")
        let port = try wharf.port("clock")
        let normal = try TestSocket(port: port)
        let slow = try TestSocket(port: port)
        let start = Date()
        var cutAfter: Double?
        var served = 0
        // The slow client trickles a byte every 100 ms and never finishes its line; the
        // normal one completes a round trip every 100 ms throughout.
        while Date().timeIntervalSince(start) < 2.0 {
            if cutAfter == nil {
                if (try? slow.send("x")) == nil || slow.peerClosedNow() { cutAfter = Date().timeIntervalSince(start) }
            }
            try normal.send("ping \(served)\n")
            #expect(try normal.receiveLine() == "ping \(served)\n")
            served += 1
            usleep(100_000)
        }
        let cut = try #require(cutAfter, "the slow client was never cut")
        #expect(cut >= 1.0 * 0.9 && cut <= 1.0 * 1.1 + 0.1, "cut after \(cut) s; read_timeout_ms is 1000 (polled every 100 ms)")
        #expect(served >= 15, "the normal client was served throughout (\(served) round trips)")
        #expect(eventually { wharf.stderr.contains("closed: read timeout (message incomplete) (-20)") })
        #expect(eventually { wharf.stderr.contains("connection closed: read_timeout_ms passed") })
    }

    @Test func aBusyConnectionEndsAtItsMaximumLifetime() throws {
        let wharf = try Self.clockGateway("max_lifetime_ms: 1000, idle_timeout_ms: 200")
        let client = try TestSocket(port: try wharf.port("clock"))
        let start = Date()
        let round = Self.pingUntilClosed(client)
        Self.expectNear(Date().timeIntervalSince(start), 1.0, "lifetime")
        #expect(round >= 12, "it was busy the whole time (\(round) round trips)")
        #expect(eventually { wharf.stderr.contains("closed: connection lifetime exceeded (-21)") })
    }

    @Test func hundredsOfSilentConnectionsGoWhileAnActiveOneStays() throws {
        let wharf = try Self.clockGateway("idle_timeout_ms: 500")
        let port = try wharf.port("clock")
        let silent = try (0..<300).map { _ in try TestSocket(port: port) }
        let active = try TestSocket(port: port)
        let start = Date()
        for round in 0..<10 {
            try active.send("still here \(round)\n")
            #expect(try active.receiveLine() == "still here \(round)\n")
            usleep(100_000)
        }
        #expect(silent.allSatisfy { $0.isClosedByPeer() })
        #expect(Date().timeIntervalSince(start) < 1.5, "all closed around their deadline")
        try active.send("after\n")
        #expect(try active.receiveLine() == "after\n", "the active connection is untouched")
    }

    @Test func acceptedSocketsKeepAliveAndTheBacklogIsNginxs() throws {
        let wharf = try Self.clockGateway("tcp_keepalive: {idle_s: 30, interval_s: 5, count: 4}")
        let port = try wharf.port("clock")
        let client = try TestSocket(port: port)
        try client.send("hi\n")
        #expect(try client.receiveLine() == "hi\n")
        let established = try FixturePlugins.run("/usr/bin/env", ["ss", "-tnoH", "state", "established",
                                                                "( sport = :\(port) )"]).output
        #expect(established.contains("timer:(keepalive,"), "the server's side of the connection: \(established)")
        let listening = try FixturePlugins.run("/usr/bin/env", ["ss", "-ltnH", "( sport = :\(port) )"]).output
        let columns = listening.split(separator: " ", omittingEmptySubsequences: true)
        #expect(columns.count > 2 && columns[2] == "511", "Send-Q of a listener is its backlog: \(listening)")
    }

    /// Through the proxy, a plain TCP pair runs on the socket pump: the listener's limits
    /// still hold there.
    static func proxyGateway(_ limits: String, upstream: Int) throws -> RunningWharf {
        try RunningWharf(config: """
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(upstream)"]}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy, \(limits)}
            """)
    }

    /// The upstream socket the host opens for `connect_relay` keeps alive as the client's
    /// does (the pump sets it a second into the relay, so the check waits for it).
    @Test func aRelayedUpstreamKeepsAliveToo() throws {
        let origin = TestServer.echo()
        let wharf = try Self.proxyGateway("tcp_keepalive: {idle_s: 30, interval_s: 5, count: 4}", upstream: origin.port)
        let client = try TestSocket(port: try wharf.port("proxy"))
        try client.send("through\n")
        #expect(try client.receiveLine() == "through\n")
        var upstream = ""
        let keepsAlive = eventually(seconds: 5) {
            upstream = (try? FixturePlugins.run("/usr/bin/env", ["ss", "-tnoH", "state", "established",
                                                                "( dport = :\(origin.port) )"]).output) ?? ""
            return upstream.contains("timer:(keepalive,")
        }
        #expect(keepsAlive, "wharf's side of the upstream connection: \(upstream)")
        // The idle time is the listener's (30 s), not the kernel's default (7200 s): the
        // first probe is due within 30 s ("timer:(keepalive,28sec,0)").
        let due = upstream.components(separatedBy: "timer:(keepalive,").last?.prefix { $0 != "," } ?? ""
        #expect(due.hasSuffix("sec") && (Int(due.dropLast(3)) ?? 99) <= 30, "first probe due in \(due)")
    }

    @Test func aRelayedPairHonoursTheListenersIdleTimeout() throws {
        let origin = TestServer.echo()
        let wharf = try Self.proxyGateway("idle_timeout_ms: 1000", upstream: origin.port)
        let client = try TestSocket(port: try wharf.port("proxy"))
        try client.send("through\n")
        #expect(try client.receiveLine() == "through\n")
        let quiet = Date()
        Self.expectNear(try Self.secondsUntilClosed(client, since: quiet), 1.0, "relayed idle")
    }

    @Test func aRelayedPairEndsAtTheListenersMaximumLifetime() throws {
        let origin = TestServer.echo()
        let wharf = try Self.proxyGateway("max_lifetime_ms: 1000", upstream: origin.port)
        let start = Date()
        let client = try TestSocket(port: try wharf.port("proxy"))
        let round = Self.pingUntilClosed(client)
        Self.expectNear(Date().timeIntervalSince(start), 1.0, "relayed lifetime")
        #expect(round >= 12, "it was busy the whole time (\(round) round trips)")
    }

    @Test func pluginTimersFireAndCancel() throws {
        let wharf = try Self.clockGateway("idle_timeout_ms: 0")
        let client = try TestSocket(port: try wharf.port("clock"))
        let start = Date()
        try client.send("after 500 hello\n")
        #expect(try client.receiveLine() == "armed\n")
        #expect(try client.receiveLine() == "hello\n")
        Self.expectNear(Date().timeIntervalSince(start), 0.5, "timer")
        try client.send("after 5000 never\n")
        #expect(try client.receiveLine() == "armed\n")
        try client.send("cancel\n")
        #expect(try client.receiveLine() == "cancelled\n")
        try client.send("cancel\n")
        #expect(try client.receiveLine() == "none\n", "nothing left to cancel")
    }

    @Test func aReadDeadlineFailsTheReadAndTheStreamGoesOn() throws {
        let wharf = try Self.clockGateway("idle_timeout_ms: 0")
        let client = try TestSocket(port: try wharf.port("clock"))
        try client.send("deadline 500\n")
        #expect(try client.receiveLine() == "ok\n")
        let start = Date()
        try client.send("abc")
        #expect(try client.receiveLine() == "read timed out\n")
        Self.expectNear(Date().timeIntervalSince(start), 0.5, "read deadline")
        try client.send("def\n")
        #expect(try client.receiveLine() == "abcdef\n", "bytes that arrived before the deadline were kept")
    }
}

extension TestSocket {
    /// True if the peer has closed (EOF or reset), without waiting.
    func peerClosedNow() -> Bool {
        var byte: UInt8 = 0
        let got = recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
        return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }
}
