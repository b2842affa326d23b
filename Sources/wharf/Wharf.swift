import ArgumentParser
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct Wharf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wharf",
        abstract: "A pluggable TCP gateway: listeners mapped to C plugins.",
        version: WharfBuild.version,
        subcommands: [RunCommand.self, ReloadCommand.self, UpgradeCommand.self, StatusCommand.self, CheckCommand.self, PluginCommand.self, ClientCommand.self,
                      WorkerCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// Thrown after the message was printed, to leave with a given exit code.
struct ExitStatus: Error {
    static let runtimeFailure = ExitStatus(code: 1)
    static let configError = ExitStatus(code: 2)
    let code: Int32
}

enum FileHandleOutput {
    /// After the queued log lines, so the order on the terminal is the order of events.
    static func standardError(_ text: String) {
        LogSink.standardError.flush()
        let line = text.hasSuffix("\n") ? text : text + "\n"
        // write(2) straight to fd 2: unbuffered, and no shared FILE* across threads.
        Descriptor.writeAll(2, Array(line.utf8))
    }
}
