import Foundation
import Testing
import WharfTestSupport

/// `per_client` limits over two worker processes, with 127.0.0.x addresses as distinct clients.
@Suite struct ClientLimitTests {
    private func start(_ limits: String, processes: Int = 2) throws -> (RunningWharf, AdminClient, Int) {
        let adminPort = LoopbackPort.unused()
        let wharf = try RunningWharf(config: AdminTests.config(adminPort: adminPort, processes: processes,
                                                               listener: ", per_client: {\(limits)}"))
        return (wharf, AdminClient(port: adminPort), try wharf.port(named: "lines"))
    }

    /// Connects and says hello; nil if the connection was closed without an answer.
    private func connect(_ port: Int, from source: String) throws -> TestSocket? {
        let socket = try TestSocket(port: port, timeout: 5, source: source)
        try? socket.send("hello\n")
        return (try? socket.receiveLine()) == "hello\n" ? socket : nil
    }

    private static let limited = sample("wharf_connections_closed_total", listener: "lines", plugin: "echo",
                                        "reason=\"client_limit\"")

    @Test func openConnectionsPerClientAreCappedAcrossWorkers() throws {
        let (wharf, admin, port) = try start("max_connections: 3")
        var held: [TestSocket] = []
        for _ in 0..<3 { held.append(try #require(try connect(port, from: "127.0.0.2"))) }
        // The kernel spread them over both workers; the fourth is refused whichever gets it.
        for _ in 0..<4 { #expect(try connect(port, from: "127.0.0.2") == nil) }
        #expect(try connect(port, from: "127.0.0.3") != nil, "another client is not affected")
        held.removeFirst()
        #expect(eventually { (try? connect(port, from: "127.0.0.2")) != nil }, "a closed one frees a place")
        #expect((try admin.metrics()[Self.limited] ?? 0) >= 4, "the four refusals (and any retry before the release landed)")
        #expect(eventually { wharf.stderr.contains("per_client.max_connections (3) reached") })
        #expect(wharf.stop() == 0)
    }

    @Test func newConnectionsPerSecondAreABucket() throws {
        let (wharf, admin, port) = try start("connections_per_second: 2, burst: 4")
        var served = 0
        for _ in 0..<8 where try connect(port, from: "127.0.0.2") != nil { served += 1 }
        #expect(served >= 4 && served <= 5, "the burst, plus what refilled meanwhile: \(served)")
        #expect(try connect(port, from: "127.0.0.3") != nil)
        #expect(eventually(seconds: 3) { (try? connect(port, from: "127.0.0.2")) != nil }, "tokens come back")
        let rate = sample("wharf_connections_closed_total", listener: "lines", plugin: "echo", "reason=\"client_rate\"")
        #expect((try admin.metrics()[rate] ?? 0) >= 3)
        #expect(wharf.stop() == 0)
    }

    @Test func aCrashedWorkerDoesNotLeaveItsClientsCounted() throws {
        let (wharf, _, port) = try start("max_connections: 2", processes: 1)
        var held = [try #require(try connect(port, from: "127.0.0.2")), try #require(try connect(port, from: "127.0.0.2"))]
        #expect(try connect(port, from: "127.0.0.2") == nil)
        let victim = try wharf.workerPID()
        kill(victim, SIGKILL)
        #expect(eventually { wharf.workerPIDs.count == 1 && wharf.workerPIDs != [victim] })
        held.removeAll()
        #expect(eventually { (try? connect(port, from: "127.0.0.2")) != nil }, "the dead worker's lane was cleared")
        #expect(try connect(port, from: "127.0.0.2") != nil)
        #expect(wharf.stop() == 0)
    }

    @Test func theTableIsBoundedAndEvictsIdleClients() throws {
        let (wharf, _, port) = try start("max_connections: 1, table_size: 64", processes: 1)
        // 300 distinct clients, each connecting once: far more than the table holds.
        for index in 0..<300 {
            let client = "127.0.\(1 + index / 200).\(1 + index % 200)"
            #expect(try connect(port, from: client) != nil, "\(client) is served")
        }
        let held = try #require(try connect(port, from: "127.0.9.9"))
        #expect(try connect(port, from: "127.0.9.9") == nil, "the limit still holds for a client with a connection")
        _ = held
        #expect(wharf.stop() == 0)
    }
}
