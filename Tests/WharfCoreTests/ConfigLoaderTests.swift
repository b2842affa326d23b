import NIOCore
import Testing
@testable import WharfCore

@Suite struct ConfigLoaderTests {
    let valid = """
        event_loops: 2
        plugin_dirs: [/opt/wharf/plugins]
        plugins:
          echo:
            path: echo
            config: {max_bytes: 65536, name: "x", nested: {list: [1, 2.5, true, null, "no"]}}
        listeners:
          - address: 127.0.0.1
            port: 8889
            plugin: echo
            backlog: 128
            reuse_port: false
            max_buffer_size: 104857600
            read_chunk_size: 65536
        """

    func error(_ text: String) -> String {
        do {
            _ = try ConfigLoader.parse(text, file: "wharf.yaml")
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func parsesTheDocumentedShape() throws {
        let config = try ConfigLoader.parse(valid, file: "wharf.yaml")
        #expect(config.eventLoops == 2)
        #expect(config.processes == 1)
        #expect(config.drainTimeoutMilliseconds == 5000)
        #expect(config.pluginDirectories == ["/opt/wharf/plugins"])
        #expect(config.plugins.map(\.name) == ["echo"])
        #expect(config.plugins[0].configJSON
            == #"{"max_bytes":65536,"name":"x","nested":{"list":[1,2.5,true,null,"no"]}}"#)
        let listener = try #require(config.listeners.first)
        #expect(listener.address == "127.0.0.1")
        #expect(listener.port == 8889)
        #expect(listener.plugin == "echo")
        #expect(listener.effectiveReadChunkSize == 65536)
    }

    @Test func theEmbeddedDefaultServesTheThreeSeeds() throws {
        let config = try ConfigLoader.parse(DefaultConfig.text, file: DefaultConfig.fileName)
        #expect(config.listeners.map(\.port) == [8888, 8889, 8060])
        #expect(config.listeners.map(\.plugin) == ["reverse", "echo", "separator_echo"])
        #expect(config.listeners.allSatisfy { $0.address == "127.0.0.1" })
        #expect(config.plugin(named: "separator_echo")?.configJSON.contains(#""separator":"\r\n\r\n""#) == true)
    }

    @Test func wrongTypeNamesLineColumnAndKeyPath() {
        let text = valid.replacingPort(with: "eighty")
        #expect(error(text) == #"wharf.yaml:9:11: listeners[0].port: expected an integer 0-65535 (0: any free port), got "eighty""#)
    }

    @Test func outOfRangeValues() {
        #expect(error(valid.replacingPort(with: "70000")).hasSuffix("listeners[0].port: expected an integer 0-65535 (0: any free port), got 70000"))
        #expect(error(valid.replacing("event_loops: 2", with: "event_loops: 0")) == "wharf.yaml:1:14: event_loops: expected an integer 1-256, got 0")
    }

    @Test func unknownKeySuggestsTheRightOne() {
        let text = valid.replacing("    plugin: echo", with: "    plugni: echo")
        #expect(error(text) == "wharf.yaml:10:5: listeners[0]: unknown key 'plugni' (did you mean 'plugin'?); "
            + "expected one of: name, address, port, plugin, backlog, reuse_port, tcp_nodelay, max_buffer_size, "
            + "read_chunk_size, fixed_read_chunks, close_linger_ms, proxy_protocol, tls, handshake_timeout_ms, "
            + "idle_timeout_ms, read_timeout_ms, max_lifetime_ms, tcp_keepalive, allow, deny, max_connections, on_limit, "
            + "access_log, per_client, max_write_buffer_size, pump_accept")
        #expect(error("procesess: 1\n" + valid).hasPrefix("wharf.yaml:1:1: unknown key 'procesess' (did you mean 'processes'?)"))
    }

    @Test func anAliasBombIsRefusedBeforeItExpands() {
        var text = "plugins:\n  e:\n    path: echo\n    config:\n      a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            text += "      a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]\n"
        }
        text += "listeners: [{port: 1, plugin: e}]\n"
        #expect(error(text) == "wharf.yaml:10:21: the document expands to more than 100000 values (aliases repeating aliases?)")
    }

    @Test func ordinaryAliasesStillWork() throws {
        let text = "plugins:\n  e: {path: echo, config: {base: &limits {max_bytes: 64}, again: *limits}}\n"
            + "listeners: [{port: 1, plugin: e}]\n"
        let config = try ConfigLoader.parse(text, file: "wharf.yaml")
        #expect(config.plugins[0].configJSON == #"{"base":{"max_bytes":64},"again":{"max_bytes":64}}"#)
    }

    @Test func theBudgetCountsWhatAliasesStandFor() throws {
        #expect(throws: Never.self) { try YAMLBudget.check("a: &a [1, 2, 3]\nb: [*a, *a]\n", limit: 16) }
        #expect(throws: YAMLBudget.Exceeded.self) { try YAMLBudget.check("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", limit: 16) }
    }

    @Test func connectionLimits() throws {
        let limited = try ConfigLoader.parse(valid.replacing("    backlog: 128", with: "    backlog: 128\n    max_connections: 100\n    on_limit: reject"), file: "wharf.yaml")
        #expect(limited.listeners[0].maxConnections == 100)
        #expect(limited.listeners[0].rejectOverLimit)
        #expect(error(valid.replacing("    backlog: 128", with: "    on_limit: drop")) == #"wharf.yaml:11:15: listeners[0].on_limit: expected queue or reject, got "drop""#)
    }

    @Test func renamedKeysNameTheirReplacement() {
        #expect(error(valid.replacing("event_loops: 2", with: "workers: 2")) == "wharf.yaml:1:1: 'workers' was renamed: use "
            + "'event_loops' (event-loop threads in each worker process); 'processes' is the number of worker processes")
        #expect(error("shutdown_grace_ms: 5\n" + valid) == "wharf.yaml:1:1: 'shutdown_grace_ms' was renamed: use 'drain_timeout_ms'")
    }

    @Test func processesAndEventLoops() throws {
        let auto = try ConfigLoader.parse("processes: auto\n" + valid, file: "wharf.yaml")
        #expect(auto.processes == System.coreCountClamped)
        let split = try ConfigLoader.parse(valid.replacing("event_loops: 2\n", with: "processes: 2\n"), file: "wharf.yaml")
        #expect(split.eventLoops == max(1, System.coreCountClamped / 2))
        #expect(error("processes: some\n" + valid) == #"wharf.yaml:1:12: processes: expected an integer 1-256 or auto, got "some""#)
        let socket = try ConfigLoader.parse("control_socket: run/wharf.sock\n" + valid, file: "/etc/wharf/wharf.yaml",
                                            baseDirectory: "/etc/wharf")
        #expect(socket.controlSocket == "/etc/wharf/run/wharf.sock")
    }

    @Test func relayPumpScheduling() throws {
        #expect(try ConfigLoader.parse(valid, file: "wharf.yaml").relayPumpScheduling == .auto, "the default")
        let normal = try ConfigLoader.parse("relay_pump_scheduling: normal\n" + valid, file: "wharf.yaml")
        #expect(normal.relayPumpScheduling == .normal)
        #expect(error("relay_pump_scheduling: fifo\n" + valid)
            == #"wharf.yaml:1:24: relay_pump_scheduling: expected auto, batch or normal, got "fifo""#)
    }

    @Test func missingRequiredKey() {
        let text = valid.replacing("    plugin: echo\n", with: "")
        #expect(error(text) == "wharf.yaml:8:5: listeners[0]: missing required key 'plugin'")
        #expect(error("plugins: {e: {path: echo}}\n").hasSuffix("missing required key 'listeners'"))
        #expect(error("plugins: {e: {config: {}}}\nlisteners: []").hasSuffix("plugins.e: missing required key 'path'"))
    }

    @Test func listenerNamingAnUnknownPlugin() {
        let text = valid.replacing("    plugin: echo", with: "    plugin: ech")
        #expect(error(text) == "wharf.yaml:10:13: listeners[0].plugin: no plugin instance named 'ech' (defined: echo)")
    }

    @Test func twoListenersOnOneAddressAndPort() {
        let text = valid + "\n  - {address: 127.0.0.1, port: 8889, plugin: echo}\n"
        #expect(error(text) == "wharf.yaml:15:5: listeners[1]: 127.0.0.1:8889 is already used by listeners[0] (line 8)")
    }

    @Test func booleansAreStrict() {
        let text = valid.replacing("reuse_port: false", with: "reuse_port: no")
        #expect(error(text).hasSuffix(#"listeners[0].reuse_port: expected true or false, got "no""#))
    }

    @Test func badAddress() {
        let text = valid.replacing("address: 127.0.0.1", with: "address: \"not an address!\"")
        #expect(error(text).contains("listeners[0].address: expected an IPv4 or IPv6 address or a hostname"))
    }

    @Test func syntaxAndDuplicateKeyErrorsHaveAPosition() {
        #expect(error("plugins: {echo: {path: echo}\nlisteners: []").hasPrefix("wharf.yaml:2:"))
        #expect(error("plugins: {}\nplugins: {}\n").contains("duplicate key 'plugins'"))
        #expect(error("") == "wharf.yaml:1:1: the file is empty")
        #expect(error("- a\n- b\n") == "wharf.yaml:1:1: expected a mapping, got a list")
    }

    @Test func emptyListenersOrPluginsAreErrors() {
        #expect(error("plugins: {e: {path: echo}}\nlisteners: []\n").hasSuffix("listeners: no listeners defined: nothing to serve"))
        #expect(error("plugins: {}\nlisteners: []\n").hasSuffix("plugins: no plugin instances defined"))
    }

    @Test func pluginConfigFloatsMustBeJSON() {
        let text = valid.replacing("max_bytes: 65536", with: "max_bytes: .inf")
        #expect(error(text).contains("plugins.echo.config.max_bytes: .inf cannot be represented in JSON"))
    }

    @Test func stringsAreEscapedForJSON() {
        var json = ""
        JSONValue.quote("a\"b\\c\n\u{01}é", into: &json)
        #expect(json == #""a\"b\\c\n\u0001é""#)
    }
}

extension String {
    func replacing(_ old: String, with new: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: old) {
            result += rest[..<range.lowerBound] + new
            rest = rest[range.upperBound...]
        }
        return result + rest
    }

    func replacingPort(with value: String) -> String { replacing("port: 8889", with: "port: \(value)") }
}

private extension Substring {
    func range(of needle: String) -> Range<Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(needle) { return index..<self.index(index, offsetBy: needle.count) }
            index = self.index(after: index)
        }
        return nil
    }
}

@Suite struct SampleConfigTests {
    @Test func etcWharfYamlIsTheEmbeddedDefault() throws {
        let root = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let config = try ConfigLoader.load(file: "/" + root + "/etc/wharf.yaml")
        let embedded = try ConfigLoader.parse(DefaultConfig.text, file: DefaultConfig.fileName)
        #expect(config.listeners.map(\.port) == embedded.listeners.map(\.port))
        #expect(config.plugins.map(\.configJSON) == embedded.plugins.map(\.configJSON))
        #expect(config.admin?.endpoint == embedded.admin?.endpoint)
    }
}
