import Foundation
import WharfTestSupport
import Testing

/// `connect_relay`'s direct path (ABI 1.6), through the `proxy` plugin: the upstream socket
/// is the host's own, and when its connect does not complete at once the relay pump watches
/// it. A listener with a full accept queue drops SYNs, so a connect to it stays pending
/// until the kernel retransmits (after about a second) into a queue with room.
@Suite struct ConnectRelayTests {
    /// Connects without waiting: fills a backlog-0 listener's queue (the first is queued,
    /// the second's SYN is dropped). The caller closes the descriptors.
    static func fill(_ listener: TestListener) -> [Int32] {
        (0..<2).map { _ in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(listener.port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            return fd
        }
    }

    /// A metric summed over its labels (0 if the admin endpoint does not answer).
    static func sum(_ name: String, _ admin: AdminClient) -> Double {
        ((try? admin.metrics()) ?? [:]).filter { $0.key.hasPrefix(name + "{") || $0.key == name }.values.reduce(0, +)
    }

    /// The port a socket of ours is bound to (`peer`: the one it is connected to).
    static func port(of fd: Int32, peer: Bool = false) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func proxy(to upstream: Int, admin: Int, scratch: TemporaryDirectory? = nil) throws -> RunningWharf {
        let log = scratch.map { "access_log: {path: \"\($0.path("access.log"))\"}\n" } ?? ""
        return try RunningWharf(config: """
            event_loops: 1
            admin: {address: 127.0.0.1, port: \(admin)}
            \(log)plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(upstream)"], connect_timeout_ms: 5000}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy}

            """, scratch: scratch)
    }

    @Test func aConnectThatTakesAWhileIsWatchedAndThenRelayed() throws {
        let upstream = try TestListener(backlog: 0)
        let fillers = Self.fill(upstream)
        defer { fillers.forEach { close($0) } }
        let adminPort = LoopbackPort.unused()
        let front = try proxy(to: upstream.port, admin: adminPort)
        let admin = AdminClient(port: adminPort)
        let client = try TestSocket(port: try front.port("proxy"), timeout: 10)
        let sent = Date()
        try client.send("late but whole\n")
        // The proxy's SYN went to the full queue; only now does the upstream start accepting.
        #expect(eventually { Self.sum("wharf_upstream_connects_total", admin) >= 1 })
        let echo = Thread {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, let accepted = try? upstream.accept(timeout: 1) {
                Thread { // echo whatever each accepted connection sends (fillers send nothing)
                    while let bytes = try? accepted.receive(count: 1), !bytes.isEmpty { try? accepted.send(bytes) }
                }.start()
            }
        }
        echo.start()
        #expect(try client.receiveString(count: 15) == "late but whole\n")
        let waited = Date().timeIntervalSince(sent)
        #expect(waited > 0.5, "the connect completed at once (\(waited) s): the pump never watched it")
        let failures = try admin.metrics().filter { $0.key.hasPrefix("wharf_upstream_connect_failures_total") }
        #expect(failures.values.allSatisfy { $0 == 0 }, "\(failures)")
    }

    @Test func aClientThatLeavesWhileConnectingCallsTheConnectOff() throws {
        let upstream = try TestListener(backlog: 0)
        let fillers = Self.fill(upstream)
        defer { fillers.forEach { close($0) } }
        let fillerPorts = Set(fillers.map { Self.port(of: $0) })
        let adminPort = LoopbackPort.unused()
        let scratch = try TemporaryDirectory()
        let front = try proxy(to: upstream.port, admin: adminPort, scratch: scratch)
        let admin = AdminClient(port: adminPort)
        let client = try TestSocket(port: try front.port("proxy"))
        try client.send("never mind\n")
        #expect(eventually { Self.sum("wharf_upstream_connects_total", admin) >= 1 })
        client.reset()
        // The access log's line says the client left while the upstream was being connected.
        let lines = AccessLogTests.lines(scratch.path("access.log"), count: 1)
        #expect(lines.first?["termination"] as? String == "CC", "\(lines)")
        // Called off, the proxy's socket is closed and sends no more SYNs (its retransmit is
        // due about a second after the first): what the upstream accepts from now on, as
        // its queue drains, is only the test's own fillers.
        let deadline = Date().addingTimeInterval(2.5)
        var strangers: [Int] = []
        while Date() < deadline {
            guard let accepted = try? upstream.accept(timeout: 0.5) else { continue }
            let peer = Self.port(of: accepted.fd, peer: true)
            if !fillerPorts.contains(peer) { strangers.append(peer) }
        }
        #expect(strangers.isEmpty, "the abandoned connect still reached the upstream from \(strangers)")
        let failures = try admin.metrics().filter { $0.key.hasPrefix("wharf_upstream_connect_failures_total") }
        #expect(failures.values.allSatisfy { $0 == 0 }, "a client leaving is not the upstream's failure: \(failures)")
    }
}
