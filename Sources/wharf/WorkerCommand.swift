import ArgumentParser
import Logging
import WharfCore

/// `wharf worker`: what the supervisor spawns. Not for people (hidden from help).
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "A worker process, started by `wharf run` (internal).",
        shouldDisplay: false
    )

    @Option var generation: Int
    @Option var slot: Int
    @Option var configName: String
    @Option var baseDirectory: String
    @Option var logLevel: String?

    func run() throws {
        let identity = WorkerProcess.Identity(generation: generation, slot: slot, configName: configName,
                                              baseDirectory: baseDirectory)
        let status = WorkerProcess(identity: identity).run { config in
            LogSetup.setLevel(logLevel.flatMap(Logger.Level.init(rawValue:)) ?? config.logLevel)
            LogSetup.bootstrap()
        }
        throw ExitStatus(code: status)
    }
}
