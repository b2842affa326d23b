import Foundation
import WharfTestSupport
import Testing

/// The three seed services, served by the real binary with the real plugins.
@Suite struct SeedServiceTests {
    func startSeeds(eventLoops workers: Int = 2) throws -> RunningWharf {
        try RunningWharf(config: gatewayConfig(plugins: seedPlugins, listeners: ["echo", "reverse", "separator_echo"],
                                               extra: "event_loops: \(workers)\n"))
    }

    // MARK: echo

    @Test func echoRepliesLineByLineByteExact() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("echo"))
        try client.send("hello\n")
        #expect(try client.receiveString(count: 6) == "hello\n")
        // Split delivery: the line arrives in pieces, with pauses.
        for piece in ["he", "llo wo", "rld\nsecond", " line\n"] {
            try client.send(piece)
            usleep(20_000)
        }
        #expect(try client.receiveString(count: 24) == "hello world\nsecond line\n")
    }

    @Test func echoServesPipelinedLinesInOrder() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("echo"))
        let lines = (0..<300).map { "line \($0)\n" }.joined()
        try client.send(lines)
        #expect(try client.receiveString(count: lines.utf8.count) == lines)
    }

    @Test func echoIsBinarySafe() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("echo"))
        var line = (0...255).map(UInt8.init).filter { $0 != 10 }.prefix(62).map { $0 }
        line.insert(0, at: 0)
        line.append(10)
        #expect(line.count == 64)
        try client.send(line)
        #expect(try client.receive(count: line.count) == line)
        let invalidUTF8: [UInt8] = [0xFF, 0xFE, 0xC3, 0x28, 0x00, 0x0A]
        try client.send(invalidUTF8)
        #expect(try client.receive(count: invalidUTF8.count) == invalidUTF8)
    }

    @Test func echoLimitClosesOnlyTheOffendingConnection() throws {
        let wharf = try startSeeds()
        let port = try wharf.port("echo")
        let bystander = try TestSocket(port: port)
        let offender = try TestSocket(port: port)
        // max_bytes is 64, delimiter included: 64 is fine, 65 is not.
        let exact = String(repeating: "x", count: 63) + "\n"
        try offender.send("ok\n" + exact + String(repeating: "y", count: 100))
        let (received, _) = try offender.receiveUntilClose()
        #expect(String(decoding: received, as: UTF8.self) == "ok\n" + exact, "earlier lines answered, the long one refused")
        try bystander.send("still here\n")
        #expect(try bystander.receiveString(count: 11) == "still here\n")
    }

    @Test func halfClosedClientGetsEveryReply() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("echo"))
        try client.send("first\nsecond\nthird\n")
        client.shutdownWrite()
        let (received, reset) = try client.receiveUntilClose()
        #expect(String(decoding: received, as: UTF8.self) == "first\nsecond\nthird\n")
        #expect(!reset)
    }

    @Test func silentOrIdleClientsDoNotAffectOthers() throws {
        let wharf = try startSeeds()
        let port = try wharf.port("echo")
        let idle = (0..<20).map { _ in try? TestSocket(port: port) }
        let partial = try TestSocket(port: port)
        try partial.send("no newline yet")
        let client = try TestSocket(port: port)
        try client.send("served\n")
        #expect(try client.receiveString(count: 7) == "served\n")
        withExtendedLifetime((idle, partial)) {}
    }

    @Test func twoHundredConcurrentConnections() throws {
        let wharf = try startSeeds(eventLoops: 4)
        let port = try wharf.port("echo")
        let clients = try (0..<200).map { _ in try TestSocket(port: port) }
        for (index, client) in clients.enumerated() { try client.send("client \(index)\n") }
        for (index, client) in clients.enumerated() {
            let expected = "client \(index)\n"
            #expect(try client.receiveString(count: expected.utf8.count) == expected)
        }
    }

    // MARK: reverse

    @Test func reverseAnswersEachChunkThenItsReverse() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("reverse"))
        try client.send("hello")
        #expect(try client.receiveString(count: 10) == "helloolleh")
        try client.send("ab\u{00}c")
        #expect(try client.receive(count: 8) == Array("ab\u{00}cc\u{00}ba".utf8))
    }

    @Test func reverseSplitsASegmentIntoTwentyByteChunks() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("reverse"))
        let segment = (0..<100).map { String(UnicodeScalar(UInt8(65 + $0 % 26))) }.joined()
        try client.send(segment)
        var expected = ""
        var rest = Substring(segment)
        while !rest.isEmpty {
            let chunk = rest.prefix(20)
            expected += chunk + String(chunk.reversed())
            rest = rest.dropFirst(20)
        }
        #expect(try client.receiveString(count: 200) == expected)
    }

    @Test func reverseClosesAfterOver() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("reverse"))
        try client.send("over")
        let (received, _) = try client.receiveUntilClose()
        #expect(String(decoding: received, as: UTF8.self) == "overrevo")
    }

    @Test func overSplitAcrossReadsDoesNotClose() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("reverse"))
        try client.send("ov")
        #expect(try client.receiveString(count: 4) == "ovvo")
        try client.send("er")
        #expect(try client.receiveString(count: 4) == "erre")
        try client.send("x")
        #expect(try client.receiveString(count: 2) == "xx", "still open")
    }

    @Test func fixedReadChunksGiveTornadosChunkBoundaries() throws {
        // With fixed 64 KiB socket reads, a 10,000-byte segment is buffered whole, so
        // read_bytes(4096, partial) yields 4096, 4096, 1808: exactly what Tornado does.
        let config = """
            plugins:
              reverse: {path: reverse, config: {chunk_size: 4096}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: reverse, fixed_read_chunks: true}

            """
        let wharf = try RunningWharf(config: config)
        let client = try TestSocket(port: try wharf.port("reverse"))
        let segment = (0..<10_000).map { UInt8(33 + $0 % 90) }
        try client.send(segment)
        var expected: [UInt8] = []
        for start in stride(from: 0, to: segment.count, by: 4096) {
            let chunk = Array(segment[start..<min(start + 4096, segment.count)])
            expected += chunk + chunk.reversed()
        }
        #expect(try client.receive(count: expected.count) == expected)
    }

    // MARK: separator echo

    @Test func separatorEchoLikePulsar() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("separator_echo"))
        try client.send("ciao luca\r\n\r\n")
        #expect(try client.receiveString(count: 13) == "ciao luca\r\n\r\n")
        let big = String(repeating: "a", count: 8192) + "\r\n\r\n"
        try client.send(big)
        #expect(try client.receiveString(count: big.utf8.count) == big)
        let three = "one\r\n\r\ntwo\r\n\r\nthree\r\n\r\n"
        try client.send(three)
        #expect(try client.receiveString(count: three.utf8.count) == three)
    }

    @Test func separatorSplitAcrossSegments() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("separator_echo"))
        for piece in ["body\r", "\n\r", "\n"] {
            try client.send(piece)
            usleep(20_000)
        }
        #expect(try client.receiveString(count: 8) == "body\r\n\r\n")
    }

    @Test func quitIsEchoedThenClosed() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("separator_echo"))
        try client.send("before\r\n\r\nQUIT\r\n\r\nafter\r\n\r\n")
        let (received, _) = try client.receiveUntilClose()
        #expect(String(decoding: received, as: UTF8.self) == "before\r\n\r\nQUIT\r\n\r\n")
    }

    @Test func customSeparatorAndLimit() throws {
        let plugins = "  pipe: {path: separator_echo, config: {separator: \"|\", max_bytes: 8}}\n"
        let wharf = try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["pipe"]))
        let client = try TestSocket(port: try wharf.port("pipe"))
        try client.send("a|bb|")
        #expect(try client.receiveString(count: 5) == "a|bb|")
        try client.send("123456789|")
        let (received, _) = try client.receiveUntilClose()
        #expect(received.isEmpty, "a message over max_bytes closes the connection")
    }

    // MARK: lifecycle

    @Test func drainGivesBusyConnectionsTheGracePeriod() throws {
        let wharf = try RunningWharf(config: gatewayConfig(plugins: seedPlugins, listeners: ["echo"],
                                                           extra: "drain_timeout_ms: 1500\n"))
        let port = try wharf.port("echo")
        let busy = try TestSocket(port: port)
        try busy.send("half a li")
        usleep(100_000)
        kill(wharf.process.processIdentifier, SIGTERM)
        usleep(300_000)
        #expect((try? TestSocket(port: port)) == nil, "no new connections while draining")
        try busy.send("ne\n")
        #expect(try busy.receiveString(count: 12) == "half a line\n", "a busy connection is still served")
        #expect(busy.isClosedByPeer(), "then closed: idle again, or at the end of the grace period")
        let deadline = Date().addingTimeInterval(10)
        while wharf.process.isRunning, Date() < deadline { usleep(20_000) }
        #expect(wharf.process.terminationStatus == 0)
    }

    @Test func sigtermDrainsAndExitsZero() throws {
        let wharf = try startSeeds()
        let client = try TestSocket(port: try wharf.port("echo"))
        try client.send("before stop\n")
        #expect(try client.receiveString(count: 12) == "before stop\n")
        #expect(wharf.stop() == 0)
        #expect(client.isClosedByPeer(), "the idle connection was closed by the drain")
        #expect(eventually { wharf.stderr.contains("stopping: no new connections") })
    }
}
