import Foundation
import Testing
import WharfTestSupport

/// The `message_proxy` plugin and the connection pool under it (ABI 1.5): many clients'
/// separator-framed requests over a few upstream connections, each reply back to its own
/// client in order; upstream failures reach only the requests they hit; the pool recovers.
@Suite struct MessageProxyTests {
    static let separator = "\r\n\r\n"

    /// A message_proxy in front of `upstreamPort`.
    func startProxy(upstreamPort: Int, poolSize: Int, loops: Int = 1, timeoutMs: Int = 5000) throws -> RunningWharf {
        let plugins = "  mp: {path: message_proxy, config: {upstream: \"127.0.0.1:\(upstreamPort)\", "
            + "pool_size: \(poolSize), timeout_ms: \(timeoutMs)}}\n"
        return try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["mp"],
                                                      extra: "event_loops: \(loops)\n"))
    }

    @Test func aThousandClientsShareAPoolOfTen() throws {
        let adminPort = LoopbackPort.unused()
        let backend = try RunningWharf(config: """
            admin: {port: \(adminPort)}
            plugins:
              separator_echo: {path: separator_echo}
            listeners:
              - {name: upstream, address: 127.0.0.1, port: 0, plugin: separator_echo}

            """)
        let front = try startProxy(upstreamPort: try backend.port(named: "upstream"), poolSize: 10, loops: 2)
        let port = try front.port("mp")
        let clients = try (0..<1000).map { _ in try TestSocket(port: port) }
        // Three pipelined requests each: the replies must come back whole and in order.
        for (index, client) in clients.enumerated() {
            try client.send((0..<3).map { "client \(index) request \($0)" + Self.separator }.joined())
        }
        for (index, client) in clients.enumerated() {
            for request in 0..<3 {
                #expect(try client.receive(until: Self.separator) == "client \(index) request \(request)" + Self.separator)
            }
        }
        let accepted = sample("wharf_connections_accepted_total", listener: "upstream", plugin: "separator_echo")
        let upstreamConnections = try #require(try AdminClient(port: adminPort).metrics()[accepted])
        #expect(upstreamConnections >= 2 && upstreamConnections <= 10,
                "1000 clients went over at most pool_size upstream connections: \(upstreamConnections)")

        let load = try runWharf(["client", "127.0.0.1", "\(port)", "--pool", "200", "--requests", "4000", "--check-echo"])
        #expect(load.status == 0, "every reply is its request's echo: \(load.stdout) \(load.stderr)")
        #expect(load.stdout.contains("replies 4000, wrong replies 0"))
        #expect(try AdminClient(port: adminPort).metrics()[accepted] ?? 0 <= 10, "the pool's connections were reused")
    }

    @Test func anUpstreamThatDiesMidRequestFailsOnlyTheRequestInFlight() throws {
        let upstream = try TestListener()
        let front = try startProxy(upstreamPort: upstream.port, poolSize: 2)
        let a = try TestSocket(port: try front.port("mp"))
        let b = try TestSocket(port: try front.port("mp"))
        try a.send("from a" + Self.separator)
        let first = try upstream.accept()
        #expect(try first.receive(until: Self.separator) == "from a" + Self.separator)
        try b.send("from b" + Self.separator)
        let second = try upstream.accept()
        #expect(try second.receive(until: Self.separator) == "from b" + Self.separator)

        first.reset() // the upstream dies with a's request in flight
        #expect(try a.receive(until: Self.separator) == "-ERR upstream: connection reset by peer" + Self.separator)
        try second.send("reply to b" + Self.separator)
        #expect(try b.receive(until: Self.separator) == "reply to b" + Self.separator, "b's request was untouched")

        // a goes on; the surviving connection is reused, no new one is opened.
        try a.send("again" + Self.separator)
        #expect(try second.receive(until: Self.separator) == "again" + Self.separator)
        try second.send("reply to a" + Self.separator)
        #expect(try a.receive(until: Self.separator) == "reply to a" + Self.separator)
        #expect(!upstream.hasPendingConnection(within: 0.2))
    }

    @Test func thePoolRecoversWhenTheUpstreamComesBack() throws {
        let port = LoopbackPort.unused()
        let front = try startProxy(upstreamPort: port, poolSize: 2)
        let client = try TestSocket(port: try front.port("mp"))
        try client.send("one" + Self.separator)
        #expect(try client.receive(until: Self.separator) == "-ERR upstream: connection refused" + Self.separator)

        let upstream = try TestListener(port: port)
        try client.send("two" + Self.separator)
        let connection = try upstream.accept()
        #expect(try connection.receive(until: Self.separator) == "two" + Self.separator)
        try connection.send("2" + Self.separator)
        #expect(try client.receive(until: Self.separator) == "2" + Self.separator)
    }

    @Test func aSilentUpstreamTimesOutAndItsConnectionIsNotReused() throws {
        let upstream = try TestListener()
        let front = try startProxy(upstreamPort: upstream.port, poolSize: 1, timeoutMs: 300)
        let client = try TestSocket(port: try front.port("mp"))
        try client.send("hello?" + Self.separator)
        let silent = try upstream.accept()
        #expect(try silent.receive(until: Self.separator) == "hello?" + Self.separator)
        #expect(try client.receive(until: Self.separator) == "-ERR upstream: timed out" + Self.separator)
        #expect(silent.isClosedByPeer(), "a connection whose reply never came is closed, not pooled")
        try client.send("next" + Self.separator)
        let fresh = try upstream.accept()
        #expect(try fresh.receive(until: Self.separator) == "next" + Self.separator)
    }

    @Test func anIdleConnectionThatClosesOrTalksIsDroppedNotHandedOut() throws {
        let upstream = try TestListener()
        let front = try startProxy(upstreamPort: upstream.port, poolSize: 1)
        let client = try TestSocket(port: try front.port("mp"))
        func roundTrip(_ text: String, over connection: TestSocket) throws {
            #expect(try connection.receive(until: Self.separator) == text + Self.separator)
            try connection.send(text.uppercased() + Self.separator)
            #expect(try client.receive(until: Self.separator) == text.uppercased() + Self.separator)
        }
        try client.send("x" + Self.separator)
        let first = try upstream.accept()
        try roundTrip("x", over: first)
        first.shutdownWrite() // idle in the pool, the upstream closes
        try client.send("y" + Self.separator)
        let second = try upstream.accept()
        try roundTrip("y", over: second)
        try second.send("unsolicited" + Self.separator) // idle, the upstream talks out of turn
        #expect(second.isClosedByPeer())
        try client.send("z" + Self.separator)
        let third = try upstream.accept()
        try roundTrip("z", over: third)
    }

    @Test func pooledConnectionsDoNotHoldUpTheDrain() throws {
        let upstream = try TestListener()
        let front = try startProxy(upstreamPort: upstream.port, poolSize: 1)
        let client = try TestSocket(port: try front.port("mp"))
        try client.send("q" + Self.separator)
        let pooled = try upstream.accept()
        #expect(try pooled.receive(until: Self.separator) == "q" + Self.separator)
        try pooled.send("a" + Self.separator)
        #expect(try client.receive(until: Self.separator) == "a" + Self.separator)
        let started = Date()
        #expect(front.stop() == 0)
        #expect(Date().timeIntervalSince(started) < 5, "the idle client closes at once; the pool does not count")
        #expect(pooled.isClosedByPeer(), "the pool's connection is closed at shutdown")
    }

    @Test func aBadUpstreamIsAConfigErrorWithItsKey() throws {
        let plugins = "  mp: {path: message_proxy, config: {upstream: \"no port here\"}}\n"
        let scratch = try TemporaryDirectory()
        let result = try runWharf(["check", "--config",
                                   try scratch.write("w.yaml", gatewayConfig(plugins: plugins, listeners: ["mp"]))])
        #expect(result.status != 0)
        #expect(result.stderr.contains("w.yaml:2:48: plugins.mp.config.upstream: expected \"host:port\" or \"[ipv6]:port\", "
            + "got \"no port here\""), "the host checks it against the plugin's schema: \(result.stderr)")
    }
}

extension TestSocket {
    /// Reads up to and including the first `separator`.
    func receive(until separator: String) throws -> String {
        let end = Array(separator.utf8)
        var bytes: [UInt8] = []
        while !bytes.ends(with: end) { bytes += try receive(count: 1) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Array where Element: Equatable {
    func ends(with suffix: [Element]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
