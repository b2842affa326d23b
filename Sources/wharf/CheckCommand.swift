import ArgumentParser
import WharfCore

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config: parse it, load every plugin, run each init in validate mode (like nginx -t)."
    )

    @Option(name: [.short, .long], help: "The YAML config file (default: the embedded config).")
    var config: String?

    func run() throws {
        let gatewayConfig = try ConfigSource.load(config)
        LogSetup.bootstrap()
        do {
            try ConfigCheck.validate(gatewayConfig)
        } catch {
            FileHandleOutput.standardError("wharf: \(error)")
            throw ExitStatus.configError
        }
        print("\(gatewayConfig.source): ok (\(gatewayConfig.plugins.count) plugin instances, "
            + "\(gatewayConfig.listeners.count) listeners)")
    }
}
