import ArgumentParser
import WharfCore

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Inspect plugin libraries.",
        subcommands: [InfoCommand.self]
    )

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
                file:        \(library.path)
                """)
            if let schema = library.configSchema {
                print("config:" + (schema.keys.isEmpty ? "      (none: the plugin takes no config)" : ""))
                schema.documentation.forEach { print("  " + $0) }
            }
        }
    }
}
