import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Exit codes are part of the CLI's contract: 0 ok, 1 runtime failure, 2 usage or config
// error. ArgumentParser's own usage errors (64) are mapped to 2.
do {
    var command = try Wharf.parseAsRoot()
    try command.run()
} catch let exit as ExitStatus {
    Glibc.exit(exit.code)
} catch {
    let code = Wharf.exitCode(for: error)
    let message = Wharf.fullMessage(for: error)
    if code == .success {
        print(message)
        Glibc.exit(0)
    }
    FileHandleOutput.standardError(message)
    Glibc.exit(code == .failure ? 1 : 2)
}
