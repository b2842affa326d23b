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
    /// Its column in the per-client tables (-1: none free).
    @Option var lane: Int = -1
    @Option var configName: String
    @Option var baseDirectory: String
    @Option var logLevel: String?

    func run() throws {
        let identity = WorkerProcess.Identity(generation: generation, slot: slot, lane: lane, configName: configName,
                                              baseDirectory: baseDirectory)
        let status = WorkerProcess(identity: identity).run { config in
            LogSetup.setLevel(logLevel.flatMap(Logger.Level.init(rawValue:)) ?? config.logLevel)
            LogSetup.bootstrap()
        }
        throw ExitStatus(code: status)
    }
}
