import Foundation
import Testing
import WharfTestSupport

/// `allow` / `deny` on a listener, with 127.0.0.2 and 127.0.0.3 as two distinct clients.
@Suite struct AccessListTests {
    /// Keep the RunningWharf: released, it stops.
    /// `relaysAtOnce`: a relay pump accepts (`PumpAcceptor`), not a listening channel.
    private func start(_ keys: String, relaysAtOnce: Bool = false) throws -> (RunningWharf, Int) {
        let config = WorkerFixture.config(library: try WorkerFixture.library(relaysAtOnce: relaysAtOnce), tag: "a",
                                          processes: 1, listenerKeys: keys)
        let wharf = try RunningWharf(config: config)
        return (wharf, try wharf.port(named: "main"))
    }

    @Test(arguments: [false, true]) func aDeniedClientIsClosedBeforeThePluginSeesIt(relaysAtOnce: Bool) throws {
        let (wharf, port) = try start("deny: [127.0.0.2]", relaysAtOnce: relaysAtOnce)
        let denied = try TestSocket(port: port, timeout: 3, source: "127.0.0.2")
        try? denied.send("hello\n")
        let (bytes, _) = try denied.receiveUntilClose()
        #expect(bytes.isEmpty, "closed without a word")
        #expect(try TestSocket(port: port, source: "127.0.0.3").ask().version == "v1", "other clients are served")
        #expect(eventually { wharf.stderr.contains("connection refused by the listener's allow/deny list") })
        #expect(eventually { wharf.stderr.contains("client=127.0.0.2") })
    }

    @Test(arguments: [false, true]) func anAllowListAdmitsOnlyItsNetworks(relaysAtOnce: Bool) throws {
        let (wharf, port) = try start("allow: [127.0.0.3/32, \"::1\"]", relaysAtOnce: relaysAtOnce)
        #expect(try TestSocket(port: port, source: "127.0.0.3").ask().version == "v1")
        let outsider = try TestSocket(port: port, timeout: 3, source: "127.0.0.2")
        #expect(try outsider.receiveUntilClose().bytes.isEmpty)
        #expect(wharf.stop() == 0)
    }

    @Test func behindAPROXYHeaderTheAnnouncedClientCounts() throws {
        let (wharf, port) = try start("proxy_protocol: accept, deny: [192.0.2.0/24]")
        let denied = try TestSocket(port: port, timeout: 3)
        try denied.send("PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\r\nhello\n")
        #expect(try denied.receiveUntilClose().bytes.isEmpty, "the announced client is in a denied network")
        let allowed = try TestSocket(port: port)
        try allowed.send("PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n")
        #expect(try allowed.ask().version == "v1")
        #expect(eventually { wharf.stderr.contains("client=192.0.2.7") })
        #expect(wharf.stop() == 0)
    }
}
