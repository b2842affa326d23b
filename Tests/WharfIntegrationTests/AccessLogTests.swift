import Foundation
import Testing
import WharfTestSupport

/// The access log against the real binary: one line per connection with its facts, both
/// formats, nothing lost across a reload or at stop, SIGUSR1 reopens the file, and an output
/// nobody reads does not stop traffic.
@Suite struct AccessLogTests {
    static func config(_ accessLog: String, processes: Int = 1, upstream: Int? = nil) -> String {
        var text = """
            processes: \(processes)
            event_loops: 1
            access_log: {\(accessLog)}
            plugins:
              echo: {path: echo, config: {max_bytes: 64}}

            """
        if let upstream { text += "  front: {path: proxy, config: {upstreams: [\"127.0.0.1:\(upstream)\"]}}\n" }
        text += "listeners:\n  - {name: lines, address: 127.0.0.1, port: 0, plugin: echo, deny: [127.0.0.2]}\n"
        if upstream != nil { text += "  - {name: proxied, address: 127.0.0.1, port: 0, plugin: front}\n" }
        return text
    }

    /// The log's lines, parsed (bounded wait until there are `count`).
    static func lines(_ path: String, count: Int, seconds: TimeInterval = 10) -> [[String: Any]] {
        var parsed: [[String: Any]] = []
        _ = eventually(seconds: seconds) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            parsed = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return parsed.count >= count
        }
        return parsed
    }

    /// A connection that had `text` echoed and stays open.
    static func opened(_ port: Int, _ text: String, source: String? = nil) throws -> TestSocket {
        let socket = try TestSocket(port: port, source: source)
        try socket.send(text + "\n")
        #expect(try socket.receiveLine() == text + "\n")
        return socket
    }

    /// One echo on a connection of its own, closed again; returns its client port.
    static func echo(_ port: Int, _ text: String, source: String? = nil) throws -> Int {
        try opened(port, text, source: source).localPort
    }

    @Test func oneLinePerConnectionWithItsFacts() throws {
        let backend = TestServer.echo()
        let scratch = try TemporaryDirectory()
        let path = scratch.path("access.log")
        let wharf = try RunningWharf(config: Self.config("path: \"\(path)\"", upstream: backend.port), scratch: scratch)
        let port = try wharf.port(named: "lines")
        let served = try Self.echo(port, "hello")
        let long = try TestSocket(port: port)
        try long.send(String(repeating: "x", count: 100))
        #expect(try long.receiveUntilClose().bytes.isEmpty)
        let refused = try TestSocket(port: port, source: "127.0.0.2")
        #expect(try refused.receiveUntilClose().bytes.isEmpty)
        let proxiedPort = try wharf.port(named: "proxied")
        let proxied = try Self.echo(proxiedPort, "through the proxy")

        let lines = Self.lines(path, count: 4)
        #expect(lines.count == 4, "one line per connection: \(lines)")
        func line(_ client: Int) -> [String: Any]? {
            lines.first { ($0["client"] as? String) == "127.0.0.1:\(client)" }
        }
        let echoed = try #require(line(served))
        #expect(echoed["listener"] as? String == "lines")
        #expect(echoed["plugin"] as? String == "echo")
        #expect(echoed["generation"] as? Int == 1)
        #expect(echoed["worker"] as? Int == Int(try wharf.workerPID()))
        #expect(echoed["local"] as? String == "127.0.0.1:\(port)")
        #expect(echoed["bytes_in"] as? Int == 6 && echoed["bytes_out"] as? Int == 6)
        #expect(echoed["termination"] as? String == "CD" && echoed["reason"] as? String == "peer")
        #expect((echoed["duration_ms"] as? Double).map { $0 >= 0 && $0 < 10_000 } == true)
        #expect((echoed["time"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        let limited = try #require(line(long.localPort))
        #expect(limited["bytes_in"] as? Int == 100 && limited["reason"] as? String == "limit")
        let denied = try #require(lines.first { ($0["client"] as? String)?.hasPrefix("127.0.0.2:") == true })
        #expect(denied["termination"] as? String == "DA" && denied["reason"] as? String == "denied")
        let relayed = try #require(line(proxied))
        #expect(relayed["listener"] as? String == "proxied")
        // The relay pump accepted it: its addresses come from accept and the listener.
        #expect(relayed["local"] as? String == "127.0.0.1:\(proxiedPort)")
        #expect(relayed["upstream"] as? String == "127.0.0.1:\(backend.port)")
        #expect(relayed["upstream_bytes_in"] as? Int == 18 && relayed["upstream_bytes_out"] as? Int == 18)
        #expect(relayed["bytes_in"] as? Int == 18 && relayed["bytes_out"] as? Int == 18)
        #expect(relayed["connect_ms"] is Double)
        #expect(wharf.stop() == 0)
    }

    @Test func logfmtLinesAreKeyValuePairs() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.path("access.log")
        let wharf = try RunningWharf(config: Self.config("path: \"\(path)\", format: logfmt"), scratch: scratch)
        let client = try Self.echo(try wharf.port(named: "lines"), "hi")
        var text = ""
        #expect(eventually {
            text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return text.hasSuffix("\n")
        })
        #expect(text.hasPrefix("time="))
        #expect(text.contains(" listener=lines plugin=echo generation=1 "))
        #expect(text.contains(" client=127.0.0.1:\(client) "))
        #expect(text.contains(" bytes_in=3 bytes_out=3 "))
        #expect(text.hasSuffix(" termination=CD reason=peer\n"))
        #expect(wharf.stop() == 0)
    }

    @Test func noLineIsLostAcrossAReloadOrAtStop() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.path("access.log")
        let config = Self.config("path: \"\(path)\"", processes: 2)
        let wharf = try RunningWharf(config: config, scratch: scratch)
        let port = try wharf.port(named: "lines")
        var clients = Set<Int>()
        var held: [TestSocket] = []
        for index in 0..<10 { held.append(try Self.opened(port, "before \(index)")) }
        kill(wharf.process.processIdentifier, SIGHUP)
        #expect(eventually { wharf.stderr.contains("generation 2:") && wharf.stderr.contains("serves; generation 1 drains") })
        for index in 0..<10 { clients.insert(try Self.echo(port, "during \(index)")) }
        clients.formUnion(held.map(\.localPort))
        held.removeLast(5) // closed by their clients: retired workers log them
        for index in 0..<10 { held.append(try Self.opened(port, "after \(index)")) }
        clients.formUnion(held.map(\.localPort))
        // SIGTERM with connections open: the drain closes them, and their lines are written.
        #expect(wharf.stop() == 0)
        let lines = Self.lines(path, count: clients.count, seconds: 2)
        let logged = lines.compactMap { ($0["client"] as? String)?.split(separator: ":").last.flatMap { Int($0) } }
        #expect(logged.count == clients.count, "one line each, none twice")
        #expect(Set(logged) == clients)
        #expect(Set(lines.compactMap { $0["generation"] as? Int }) == [1, 2])
        #expect(lines.contains { $0["reason"] as? String == "drain" || $0["reason"] as? String == "peer" })
        _ = held
    }

    @Test func sigusr1ReopensTheFile() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.path("access.log")
        let wharf = try RunningWharf(config: Self.config("path: \"\(path)\""), scratch: scratch)
        let port = try wharf.port(named: "lines")
        let first = try Self.echo(port, "first")
        #expect(Self.lines(path, count: 1).count == 1)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        kill(wharf.process.processIdentifier, SIGUSR1)
        #expect(eventually { wharf.stderr.contains("reopened the access log") })
        let second = try Self.echo(port, "second")
        let rotated = Self.lines(path + ".1", count: 1)
        let fresh = Self.lines(path, count: 1)
        #expect(rotated.map { $0["client"] as? String } == ["127.0.0.1:\(first)"])
        #expect(fresh.map { $0["client"] as? String } == ["127.0.0.1:\(second)"])
        #expect(wharf.stop() == 0)
    }

    @Test func anAccessLogNobodyReadsDoesNotStopTraffic() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.path("access.fifo")
        #expect(mkfifo(path, 0o600) == 0)
        // Held open and never read while the traffic runs: the pipe fills after ~250 lines.
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let wharf = try RunningWharf(config: Self.config("path: \"\(path)\""), scratch: scratch)
        let port = try wharf.port(named: "lines")
        let started = Date()
        for index in 0..<1000 { _ = try Self.echo(port, "connection \(index)") }
        #expect(Date().timeIntervalSince(started) < 20, "1000 connections served while the log cannot be written")
        // Drained now: every line arrives (the queue held them).
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(10)
        while count < 1000, Date() < deadline {
            let got = read(reader, &buffer, buffer.count)
            if got > 0 { count += buffer[..<got].filter { $0 == 10 }.count } else { usleep(10_000) }
        }
        #expect(count == 1000)
        #expect(wharf.stop() == 0)
    }
}
