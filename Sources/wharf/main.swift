import ArgumentParser
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Exit codes are part of the CLI's contract: 0 ok, 1 runtime failure, 2 usage or config
// error. ArgumentParser's own usage errors (64) are mapped to 2.
/// Exits after the log lines still queued are written (for at most a second).
func leave(_ code: Int32) -> Never {
    LogSink.standardError.flush()
    Glibc.exit(code)
}

do {
    var command = try Wharf.parseAsRoot()
    try command.run()
    leave(0)
} catch let exit as ExitStatus {
    leave(exit.code)
} catch {
    let code = Wharf.exitCode(for: error)
    let message = Wharf.fullMessage(for: error)
    if code == .success {
        print(message)
        leave(0)
    }
    FileHandleOutput.standardError(message)
    leave(code == .failure ? 1 : 2)
}
