import Foundation
import WharfTestSupport
import Testing

/// The `proxy` plugin against real upstreams started by the tests.
@Suite struct ProxyTests {
    func proxy(_ config: String, extra: String = "", listener: String = "") throws -> RunningWharf {
        try RunningWharf(config: """
            plugins:
              proxy: {path: proxy, config: {\(config)}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy\(listener)}

            """ + extra)
    }

    static func payload(_ count: Int, seed: UInt32 = 7) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
    }

    @Test(arguments: [1, 1000, 1 << 20, 64 << 20])
    func bytesArriveIntactBothWays(size: Int) throws {
        let backend = TestServer.echo()
        let front = try proxy("upstreams: [\"127.0.0.1:\(backend.port)\"]")
        // Made before connecting: the backend gives up on a connection silent for 20 s, and
        // 64 MiB takes a while to make in slow (sanitizer) builds.
        let data = Self.payload(size)
        let client = try TestSocket(port: try front.port("proxy"), timeout: 30)
        let sender = Thread { try? client.send(data) }
        sender.start()
        #expect(try client.receive(count: size) == data)
        client.shutdownWrite()
        let (rest, reset) = try client.receiveUntilClose()
        #expect(rest.isEmpty && !reset, "the backend's FIN reaches the client after everything")
    }

    @Test func halfCloseReachesTheUpstreamAndItsReplyStillArrives() throws {
        // The backend answers only after the client's FIN: it counts what it received.
        let backend = TestServer { fd in
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let got = recv(fd, &buffer, buffer.count, 0), got > 0 { total += got }
            TestServer.write(fd, Array("received \(total)\n".utf8))
        }
        let front = try proxy("upstreams: [\"127.0.0.1:\(backend.port)\"]")
        let client = try TestSocket(port: try front.port("proxy"))
        try client.send(String(repeating: "x", count: 5000))
        client.shutdownWrite()
        let (reply, reset) = try client.receiveUntilClose()
        #expect(String(decoding: reply, as: UTF8.self) == "received 5000\n")
        #expect(!reset)
    }

    @Test func aRefusedUpstreamIsSkippedForTheNextOne() throws {
        let backend = TestServer.echo()
        let dead = LoopbackPort.unused()
        // One loop: balancing and health state are per loop.
        let front = try proxy("upstreams: [\"127.0.0.1:\(dead)\", \"127.0.0.1:\(backend.port)\"], retries: 1, "
            + "fail_timeout_ms: 60000", extra: "event_loops: 1\n")
        for round in 0..<4 {
            let client = try TestSocket(port: try front.port("proxy"))
            try client.send("round \(round)\n")
            #expect(try client.receiveString(count: 8) == "round \(round)\n")
        }
        #expect(eventually { front.stderr.contains("127.0.0.1:\(dead): connection refused; trying the next one") })
        // Passive health: after the first failure the dead upstream is skipped, not retried.
        #expect(front.stderr.components(separatedBy: "connection refused").count - 1 == 1)
        #expect(backend.accepted == 4)
    }

    @Test func whenEveryUpstreamFailsTheClientIsClosed() throws {
        let front = try proxy("upstreams: [\"127.0.0.1:\(LoopbackPort.unused())\", "
            + "\"127.0.0.1:\(LoopbackPort.unused())\"], retries: 5")
        let client = try TestSocket(port: try front.port("proxy"))
        #expect(client.isClosedByPeer())
        #expect(eventually { front.stderr.contains("no upstream reachable after 2 attempts") })
    }

    @Test func anOutageDoesNotFloodTheLog() throws {
        let front = try proxy("upstreams: [\"127.0.0.1:\(LoopbackPort.unused())\"], fail_timeout_ms: 1",
                              extra: "event_loops: 1\n")
        let started = Date()
        for _ in 0..<40 {
            let client = try TestSocket(port: try front.port("proxy"))
            #expect(client.isClosedByPeer())
        }
        let seconds = Int(Date().timeIntervalSince(started)) + 1
        #expect(eventually { front.stderr.contains("no upstream reachable") })
        let refused = front.stderr.components(separatedBy: "connection refused").count - 1
        let unreachable = front.stderr.components(separatedBy: "no upstream reachable").count - 1
        #expect(refused >= 1 && refused <= seconds + 1, "\(refused) lines for 40 refusals in \(seconds) s")
        #expect(unreachable >= 1 && unreachable <= seconds + 1, "\(unreachable) lines for 40 clients in \(seconds) s")
        #expect(!front.stderr.contains("trying the next one"), "there is no other upstream to try")
    }

    @Test func itsUpstreamMetricsAppearUnderTheAdminEndpoint() throws {
        let backend = TestServer.echo()
        let dead = LoopbackPort.unused()
        let adminPort = LoopbackPort.unused()
        let front = try proxy("upstreams: [\"127.0.0.1:\(dead)\", \"127.0.0.1:\(backend.port)\"], "
            + "balance: round_robin, fail_timeout_ms: 60000",
                              extra: "event_loops: 1\nadmin: {address: 127.0.0.1, port: \(adminPort)}\n")
        var open: [TestSocket] = []
        for index in 0..<3 {
            let client = try TestSocket(port: try front.port("proxy"))
            try client.send("hello \(index)\n")
            #expect(try client.receiveString(count: 8) == "hello \(index)\n")
            open.append(client)
        }
        let metrics = try AdminClient(port: adminPort).metrics()
        func value(_ name: String, _ upstream: Int) -> Double? {
            metrics["\(name){instance=\"proxy\",route=\"default\",upstream=\"127.0.0.1:\(upstream)\"}"]
        }
        #expect(value("proxy_upstream_connects_total", backend.port) == 3)
        #expect(value("proxy_upstream_active", backend.port) == 3)
        #expect(value("proxy_upstream_connects_total", dead) == 1, "tried once, then skipped for fail_timeout_ms")
        #expect(value("proxy_upstream_connect_failures_total", dead) == 1)
        _ = open
    }

    @Test func aSilentUpstreamTimesOut() throws {
        // A listener whose accept queue is full drops further SYNs: connects hang.
        let hanging = LoopbackPort(listen: 0)
        let fillers = (0..<4).compactMap { _ in try? TestSocket(port: hanging.port, timeout: 1) }
        let backend = TestServer.echo()
        let front = try proxy("upstreams: [\"127.0.0.1:\(hanging.port)\", \"127.0.0.1:\(backend.port)\"], "
            + "connect_timeout_ms: 300, retries: 1")
        let client = try TestSocket(port: try front.port("proxy"))
        try client.send("still served\n")
        #expect(try client.receiveString(count: 13) == "still served\n")
        #expect(eventually { front.stderr.contains("127.0.0.1:\(hanging.port): timed out; trying the next one") })
        _ = fillers
    }

    @Test func anUpstreamResetMidTransferEndsOnlyThatClient() throws {
        // The first upstream connection sends 100,000 bytes and resets; later ones echo.
        let lock = NSLock()
        nonisolated(unsafe) var connections = 0
        let backend = TestServer { fd in
            let first = lock.withLock {
                connections += 1
                return connections == 1
            }
            guard first else { return TestServer.echoLoop(fd) }
            TestServer.write(fd, [UInt8](repeating: 65, count: 100_000))
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        let front = try proxy("upstreams: [\"127.0.0.1:\(backend.port)\"]")
        let client = try TestSocket(port: try front.port("proxy"))
        try client.send("hello\n")
        // The reset may overtake data in flight (the kernel drops unread bytes on RST), so
        // the client gets a prefix of it, then a reset of its own: never a FIN that would
        // make the cut-off reply look whole.
        let (received, reset) = try client.receiveUntilClose()
        #expect(received.count <= 100_000 && received.allSatisfy { $0 == 65 })
        #expect(reset, "the upstream's reset reaches the client as a reset")
        let next = try TestSocket(port: try front.port("proxy"))
        try next.send("still here\n")
        #expect(try next.receiveLine() == "still here\n", "the gateway keeps serving")
    }

    @Test func aClientResetReachesTheUpstreamAsAReset() throws {
        let lock = NSLock()
        nonisolated(unsafe) var ending: String?
        let backend = TestServer { fd in
            var buffer = [UInt8](repeating: 0, count: 64)
            let got = recv(fd, &buffer, buffer.count, 0)
            if got > 0 { TestServer.write(fd, Array(buffer[0..<got])) }
            let seen = TestServer.ending(of: fd)
            lock.withLock { ending = seen }
        }
        let front = try proxy("upstreams: [\"127.0.0.1:\(backend.port)\"]")
        let client = try TestSocket(port: try front.port("proxy"))
        try client.send("hi\n")
        #expect(try client.receiveLine() == "hi\n")
        client.reset()
        #expect(eventually { lock.withLock { ending } != nil })
        #expect(lock.withLock { ending } == "reset", "not a FIN that would make the request look whole")
    }

    @Test func aSlowReaderKeepsTheProxysMemoryBounded() throws {
        // The upstream never reads: TCP pushes back through the relay to the client.
        let stalled = TestServer { _ in usleep(6_000_000) }
        let front = try proxy("upstreams: [\"127.0.0.1:\(stalled.port)\"]")
        let client = try TestSocket(port: try front.port("proxy"))
        let (sent, growth) = try floodAndWatch(client, server: front)
        #expect(sent < 64 << 20, "the sender was throttled (it got \(sent >> 20) MiB out)")
        #expect(growth < 16 << 10, "Wharf's memory stayed bounded (grew \(growth) KB)")
    }

    @Test func fiveHundredConcurrentProxiedConnections() throws {
        let backend = try RunningWharf(config: gatewayConfig(plugins: "  echo: {path: echo}\n", listeners: ["echo"]))
        let front = try proxy("upstreams: [\"127.0.0.1:\(try backend.port("echo"))\"]")
        let port = try front.port("proxy")
        let clients = try (0..<500).map { _ in try TestSocket(port: port, timeout: 20) }
        for (index, client) in clients.enumerated() { try client.send("client \(index)\n") }
        for (index, client) in clients.enumerated() {
            #expect(try client.receiveLine() == "client \(index)\n")
        }
    }

    @Test func roundRobinSpreadsConnections() throws {
        let backends = (0..<3).map { _ in TestServer.echo() }
        let list = backends.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", ")
        let front = try RunningWharf(config: """
            event_loops: 1
            plugins:
              proxy: {path: proxy, config: {upstreams: [\(list)], balance: round_robin}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy}

            """)
        for _ in 0..<9 {
            let client = try TestSocket(port: try front.port("proxy"))
            try client.send("x\n")
            _ = try client.receive(count: 2)
        }
        #expect(backends.map(\.accepted) == [3, 3, 3])
    }

    @Test func leastConnectionsPrefersTheIdleUpstream() throws {
        let busy = TestServer.echo(), idle = TestServer.echo()
        let front = try RunningWharf(config: """
            event_loops: 1
            log_level: debug
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(busy.port)", "127.0.0.1:\(idle.port)"], balance: least_connections}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy}

            """)
        let held = try TestSocket(port: try front.port("proxy")) // goes to `busy` (first, all equal)
        try held.send("x\n")
        _ = try held.receive(count: 2)
        for ended in 1...3 {
            let client = try TestSocket(port: try front.port("proxy"))
            try client.send("y\n")
            _ = try client.receive(count: 2)
            // End it fully (FIN both ways) and wait until the proxy has counted it gone: the
            // peers see the FINs before the relay's end reaches the plugin.
            client.shutdownWrite()
            _ = try client.receiveUntilClose()
            #expect(eventually { front.stderr.components(separatedBy: " ended: ").count - 1 == ended })
        }
        #expect(busy.accepted == 1 && idle.accepted == 3, "busy \(busy.accepted), idle \(idle.accepted)")
    }

    @Test func badConfigIsRefusedWithTheKey() throws {
        let config = gatewayConfig(plugins: "  proxy: {path: proxy, config: {upstreams: [\"localhost\"]}}\n",
                                   listeners: ["proxy"])
        let scratch = try TemporaryDirectory()
        let result = try runWharf(["check", "--config", try scratch.write("wharf.yaml", config)])
        #expect(result.status == 2)
        #expect(result.stderr.contains("config key 'upstreams[0]': expected \"host:port\" or \"[ipv6]:port\", got \"localhost\""))
    }
}
