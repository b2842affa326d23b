import ArgumentParser
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which running wharf a control command talks to: the control_socket of its config, or a
/// socket named directly.
struct SupervisorAddress: ParsableArguments {
    @Option(name: [.short, .long], help: "The config file the running wharf serves (for its control_socket).")
    var config: String?

    @Option(name: .long, help: "The control socket, instead of reading it from the config.")
    var controlSocket: String?

    @Option(name: .long, help: "Seconds to wait for the answer.")
    var timeout: Int = 60

    func ask(_ command: String) throws -> String {
        try ControlClient.ask(command, config: config, controlSocket: controlSocket, timeout: timeout)
    }
}

/// `wharf reload`: asks the running supervisor (through the config's control_socket) to load
/// its config file again, and reports the result once the new generation serves or failed.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload a running wharf: new workers with the new config, old ones drain.",
        discussion: """
            Exits 0 when the new generation serves; 1 with the reason when the reload failed (the \
            previous generation keeps serving) or no supervisor answers; 2 if the config names no \
            control_socket.
            """
    )

    @OptionGroup var supervisor: SupervisorAddress

    func run() throws {
        print("reloaded: \(try supervisor.ask("reload"))")
    }
}

/// `wharf upgrade`: asks the running supervisor to start the wharf executable now at its
/// path (a new build) with the same sockets, and to hand over to it.
struct UpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Replace a running wharf with the executable now at its path, without closing a socket.",
        discussion: """
            The new executable gets the same listening sockets and starts its workers; when they are \
            ready, the old workers stop accepting and finish their connections, then the old \
            supervisor exits. Exits 0 once the new one serves; 1 if it could not start (the old one \
            keeps serving). Same as SIGUSR2, with an answer.
            """
    )

    @OptionGroup var supervisor: SupervisorAddress

    func run() throws {
        print("upgraded: \(try supervisor.ask("upgrade"))")
    }
}

/// `wharf status`: the running supervisor's generations and workers, in one line.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running wharf's pid, generations, workers and crash-looping slots."
    )

    @OptionGroup var supervisor: SupervisorAddress

    func run() throws {
        print(try supervisor.ask("status"))
    }
}

/// One request line to the supervisor's control socket, one reply line back.
enum ControlClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends `command` to the supervisor named by `controlSocket` or `config`'s
    /// control_socket and returns what follows its "ok"; prints the failure and exits 1 (2
    /// without a control socket) otherwise.
    static func ask(_ command: String, config: String?, controlSocket: String?, timeout: Int) throws -> String {
        guard let path = try controlSocket ?? ConfigSource.load(config).controlSocket else {
            FileHandleOutput.standardError("wharf: \(config ?? "the embedded default config") sets no control_socket; "
                + "add one (e.g. control_socket: /run/wharf/control.sock), or signal the supervisor")
            throw ExitStatus.configError
        }
        let reply: String
        do {
            reply = try request(command, at: path, timeoutSeconds: timeout)
        } catch {
            FileHandleOutput.standardError("wharf: \(error)")
            throw ExitStatus.runtimeFailure
        }
        guard reply.hasPrefix("ok ") else {
            let reason = reply.hasPrefix("failed ") ? String(reply.dropFirst(7)) : reply
            FileHandleOutput.standardError("wharf: \(command) failed: \(reason)")
            throw ExitStatus.runtimeFailure
        }
        return String(reply.dropFirst(3))
    }

    static func request(_ command: String, at path: String, timeoutSeconds: Int) throws -> String {
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let address = UnixSocketAddress(path) else {
            throw Failure(description: "control socket path too long: \(path)")
        }
        guard address.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            throw Failure(description: "no wharf answers on \(path): \(String(cString: strerror(errno)).lowercased())")
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let line = Array((command + "\n").utf8)
        guard send(fd, line, line.count, Int32(MSG_NOSIGNAL)) == line.count else {
            throw Failure(description: "cannot send to \(path)")
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !reply.contains(UInt8(ascii: "\n")) {
            let got = recv(fd, &buffer, buffer.count, 0)
            if got < 0 { throw Failure(description: "no answer from \(path) within \(timeoutSeconds) s") }
            if got == 0 { break }
            reply += buffer[..<got]
        }
        guard !reply.isEmpty else { throw Failure(description: "\(path) closed without an answer") }
        return String(decoding: reply, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }
}
