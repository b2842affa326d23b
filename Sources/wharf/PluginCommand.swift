import Foundation
import ArgumentParser
import WharfCore

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Inspect plugin libraries.",
        subcommands: [InfoCommand.self, TestCommand.self]
    )

    /// `wharf plugin test`: a plugin's cases, without sockets or a daemon.
    struct TestCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Run a plugin's test cases in memory, on a virtual clock (no sockets, no daemon).",
            discussion: """
                Each case gives the plugin's config and a script over in-memory connections: send \
                bytes (split, byte by byte, half-closed, reset), advance the virtual clock, expect \
                bytes, a pattern or a close, and play the upstreams the plugin connects to. The \
                plugin runs through the real host table and stream machine. The format is in \
                README.md ("Test a plugin without a daemon"); every bundled plugin has one:
                  wharf plugin test echo plugins/echo/cases.yaml
                Exit status: 0 all passed, 1 a case failed, 2 the plugin or the file was refused.
                """
        )

        @Argument(help: "A path to a shared library, or a bare NAME (libNAME.so in --plugin-dir, then beside wharf).")
        var plugin: String

        @Argument(help: "The cases file (YAML).")
        var cases: String

        @Option(name: .long, help: "A folder to search for bare names (repeatable).")
        var pluginDir: [String] = []

        @Flag(name: .long, help: "Print the report as one JSON object.")
        var json = false

        func run() throws {
            let library: PluginLibrary
            let file: PluginTestFile
            do {
                library = try PluginLibrary.load(path: try PluginLocator(pluginDirectories: pluginDir, baseDirectory: ".")
                    .resolve(plugin))
                let text = try String(contentsOfFile: cases, encoding: .utf8)
                file = try PluginTestFile.parse(text, file: cases)
            } catch {
                FileHandleOutput.standardError("wharf: \(error)")
                throw ExitStatus.configError
            }
            let outcomes = PluginTestRunner(library: library, file: file, fileName: cases).run()
            let failed = outcomes.filter { !$0.passed }.count
            if json {
                print(PluginTestReport.json(outcomes))
            } else {
                for outcome in outcomes {
                    print((outcome.passed ? "PASS  " : "FAIL  ") + outcome.name)
                    if let failure = outcome.failure { print("      " + failure) }
                }
                print("\(outcomes.count) cases: \(outcomes.count - failed) passed, \(failed) failed")
            }
            if failed > 0 { throw ExitStatus.runtimeFailure }
        }
    }

    struct InfoCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "info",
            abstract: "Print a plugin's descriptor: name, version, ABI version, description, hooks, config keys."
        )

        @Argument(help: "A path to a shared library, or a bare NAME (libNAME.so in --plugin-dir, then beside wharf).")
        var plugin: String

        @Option(name: .long, help: "A folder to search for bare names (repeatable).")
        var pluginDir: [String] = []

        func run() throws {
            let locator = PluginLocator(pluginDirectories: pluginDir, baseDirectory: ".")
            let library: PluginLibrary
            do {
                library = try PluginLibrary.load(path: try locator.resolve(plugin))
            } catch {
                FileHandleOutput.standardError("wharf: \(error)")
                throw ExitStatus.configError
            }
            print("""
                name:        \(library.name)
                version:     \(library.version)
                abi:         \(library.abiVersion) (needs host 1.\(library.minimumHostMinor)+; this host is \
                \(PluginLibrary.hostMajor).\(PluginLibrary.hostMinor))
                description: \(library.summary)
                hooks:       \(library.hooks.joined(separator: ", "))
                hints:       \(library.relaysAtOnce ? "relays at once (accepted by the relay pump)" : "none")
                file:        \(library.path)
                """)
            if let schema = library.configSchema {
                print("config:" + (schema.keys.isEmpty ? "      (none: the plugin takes no config)" : ""))
                schema.documentation.forEach { print("  " + $0) }
            }
        }
    }
}
