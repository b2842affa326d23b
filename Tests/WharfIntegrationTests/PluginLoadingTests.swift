import Foundation
import WharfTestSupport
import Testing

/// Plugins built at test time with plain cc, loaded by the real binary.
@Suite struct PluginLoadingTests {
    func config(pluginPath: String, pluginConfig: String = "{}") -> String {
        gatewayConfig(plugins: "  fixture: {path: \(pluginPath), config: \(pluginConfig)}\n", listeners: ["fixture"])
    }

    func check(pluginPath: String) throws -> ProcessResult {
        let scratch = try TemporaryDirectory()
        let file = try scratch.write("wharf.yaml", config(pluginPath: pluginPath))
        return try runWharf(["check", "--config", file])
    }

    @Test func aPluginBuiltWithPlainCCAgainstTheHeaderAloneIsServed() throws {
        let library = try FixturePlugins.build("upper", source: "upper")
        let symbols = try FixturePlugins.run("/usr/bin/env", ["nm", "-D", "--undefined-only", library])
        #expect(symbols.status == 0)
        #expect(!symbols.output.contains("wharf"), "a plugin imports nothing from the host")

        let wharf = try RunningWharf(config: config(pluginPath: library) + "event_loops: 2\n")
        let clients = try (0..<8).map { _ in try TestSocket(port: try wharf.port("fixture")) }
        for (index, client) in clients.enumerated() { try client.send("shout \(index)\n") }
        for (index, client) in clients.enumerated() {
            #expect(try client.receiveString(count: 8) == "SHOUT \(index)\n")
        }
        #expect(eventually { wharf.stderr.contains("plugin=fixture") }, "plugin log lines carry the instance name")
        #expect(eventually { wharf.stderr.contains("upper ready on loop 1 of 2") }, "init runs once per loop")
        #expect(eventually { wharf.stderr.contains("[fixture] upper ready on loop") }, "a plugin's lines are tagged with its instance")
        #expect(eventually { wharf.stderr.contains("→ fixture (upper 0.3.1)") })
    }

    @Test func theReadmePluginCompilesAndServes() throws {
        let readme = try String(contentsOf: Products.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let code = try #require(readme.components(separatedBy: "```c\n").dropFirst().first?
            .components(separatedBy: "```").first)
        #expect(code.split(separator: "\n").count <= 32, "the README promises a plugin in about 30 lines")
        let library = try FixturePlugins.build("readme_shout", code: code)
        let wharf = try RunningWharf(config: config(pluginPath: library))
        let client = try TestSocket(port: try wharf.port("fixture"))
        try client.send("make some noise\n")
        #expect(try client.receiveString(count: 16) == "MAKE SOME NOISE\n")
    }

    @Test func pluginThreadsPostBackThroughAWaker() throws {
        let library = try FixturePlugins.build("offload", source: "offload")
        let wharf = try RunningWharf(config: config(pluginPath: library) + "event_loops: 2\n")
        let clients = try (0..<4).map { _ in try TestSocket(port: try wharf.port("fixture")) }
        for round in 0..<3 {
            for (index, client) in clients.enumerated() { try client.send("job \(index) \(round)\n") }
            for (index, client) in clients.enumerated() {
                #expect(try client.receiveString(count: 8) == "JOB \(index) \(round)\n")
            }
        }
        #expect(wharf.stop() == 0)
        #expect(eventually { wharf.stderr.contains("worker thread finished 8 bytes") }, "log() works from a plugin's own thread")
        #expect(eventually { wharf.stderr.contains("offload shutdown") }, "each instance's shutdown hook runs at exit")
    }

    @Test func oneLibraryBacksSeveralInstances() throws {
        let plugins = """
              short: {path: echo, config: {max_bytes: 4}}
              long: {path: echo, config: {max_bytes: 100}}

            """
        let wharf = try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: ["short", "long"]))
        let long = try TestSocket(port: try wharf.port("long"))
        try long.send("abcdefgh\n")
        #expect(try long.receiveString(count: 9) == "abcdefgh\n")
        let short = try TestSocket(port: try wharf.port("short"))
        try short.send("abcdefgh\n")
        #expect(try short.receiveUntilClose().bytes.isEmpty)
    }

    /// Each broken variant of Fixtures/abi_variants.c is refused by `wharf check` with a
    /// message naming the file and, where versions are the reason, both versions.
    @Test(arguments: [
        ("major2", "VARIANT_MAJOR2", "built against ABI 2.\(HostABI.minor); this host speaks ABI \(HostABI.version)"),
        ("entry_v2", "VARIANT_ENTRY_V2",
         "built for plugin ABI major 2 (exports wharf_plugin_v2); this host speaks ABI \(HostABI.version)"),
        ("newer_minor", "VARIANT_NEWER_MINOR", "needs host ABI 1.\(HostABI.minor + 1) or newer (built against "
            + "\(HostABI.version)); this host speaks ABI \(HostABI.version)"),
        ("no_entry", "VARIANT_NO_ENTRY", "no entry symbol 'wharf_plugin_v1'"),
    ])
    func incompatiblePluginsAreRefused(name: String, variant: String, reason: String) throws {
        let library = try FixturePlugins.build(name, source: "abi_variants", define: variant)
        let result = try check(pluginPath: library)
        #expect(result.status == 2)
        #expect(result.stderr.contains("plugin \(library): \(reason)"), "\(result.stderr)")
    }

    @Test func aPluginBuiltAgainstAnOlderMinorLoads() throws {
        let library = try FixturePlugins.build("older_minor", source: "abi_variants", define: "VARIANT_OLDER_MINOR")
        let result = try check(pluginPath: library)
        #expect(result.status == 0, "\(result.stderr)")
        let info = try runWharf(["plugin", "info", library])
        #expect(info.stdout.contains("abi:         1.0 (needs host 1.0+; this host is \(HostABI.version))"))
        #expect(info.stdout.contains("hints:       none"), "a descriptor too short for `flags` has none: \(info.stdout)")
    }

    @Test func initRefusalPrintsThePluginsOwnMessage() throws {
        let library = try FixturePlugins.build("refuse", source: "abi_variants", define: "VARIANT_REFUSE")
        let result = try check(pluginPath: library)
        #expect(result.status == 2)
        #expect(result.stderr.contains("plugins.fixture.config: listen_port must be set (refused by the init of \(library))"),
                "\(result.stderr)")
        let scratch = try TemporaryDirectory()
        let run = try runWharf(["run", "--config", try scratch.write("w.yaml", config(pluginPath: library))])
        #expect(run.status == 2, "nothing starts")
        #expect(run.stderr.contains("listen_port must be set"))
    }

    @Test func missingAndNonELFFilesAreRefused() throws {
        let scratch = try TemporaryDirectory()
        let fake = try scratch.write("libfake.so", "this is not an ELF file\n")
        let notELF = try check(pluginPath: fake)
        #expect(notELF.status == 2)
        #expect(notELF.stderr.contains("plugin \(fake): not a shared object"))

        let missing = try check(pluginPath: "no_such_plugin")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("plugin no_such_plugin: not found: no libno_such_plugin.so in"))
    }

    @Test func pluginConfigIsCheckedAgainstThePluginsSchema() throws {
        let scratch = try TemporaryDirectory()
        let file = try scratch.write("w.yaml", gatewayConfig(plugins: "  e: {path: echo, config: {max_byte: 3}}\n",
                                                             listeners: ["e"]))
        let result = try runWharf(["check", "--config", file])
        #expect(result.status == 2)
        // Checked by the host against echo's schema, located like every config error.
        #expect(result.stderr.contains("w.yaml:2:28: plugins.e.config: unknown key 'max_byte' (did you mean 'max_bytes'?)"),
                "\(result.stderr)")
    }

    @Test func pluginInfoPrintsTheDescriptor() throws {
        let result = try runWharf(["plugin", "info", "echo"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("name:        echo"))
        #expect(result.stdout.contains("version:     1.0.0"))
        #expect(result.stdout.contains("abi:         \(HostABI.version)"))
        #expect(result.stdout.contains("hooks:       init, handle_stream, shutdown"))
        #expect(result.stdout.contains("hints:       none"))
        let proxy = try runWharf(["plugin", "info", "proxy"])
        #expect(proxy.stdout.contains("hints:       relays at once (accepted by the relay pump)"))

        let library = try FixturePlugins.build("upper", source: "upper")
        let byPath = try runWharf(["plugin", "info", library])
        #expect(byPath.stdout.contains("name:        upper"))
        #expect(byPath.stdout.contains("description: Upper-cases lines (test fixture)"))
    }
}
