import ArgumentParser
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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

    @Option(name: [.short, .long], help: "The config file the running wharf serves (for its control_socket).")
    var config: String?

    @Option(name: .long, help: "The control socket, instead of reading it from the config.")
    var controlSocket: String?

    @Option(name: .long, help: "Seconds to wait for the result.")
    var timeout: Int = 60

    func run() throws {
        guard let path = try controlSocket ?? ConfigSource.load(config).controlSocket else {
            FileHandleOutput.standardError("wharf: \(config ?? "the embedded default config") sets no control_socket; "
                + "add one (e.g. control_socket: /run/wharf/control.sock), or send SIGHUP to the supervisor")
            throw ExitStatus.configError
        }
        let reply: String
        do {
            reply = try ControlClient.request("reload", at: path, timeoutSeconds: timeout)
        } catch {
            FileHandleOutput.standardError("wharf: \(error)")
            throw ExitStatus.runtimeFailure
        }
        if reply.hasPrefix("ok ") {
            print("reloaded: \(reply.dropFirst(3))")
        } else {
            FileHandleOutput.standardError("wharf: reload failed: \(reply.hasPrefix("failed ") ? String(reply.dropFirst(7)) : reply)")
            throw ExitStatus.runtimeFailure
        }
    }
}

/// One request line to the supervisor's control socket, one reply line back.
enum ControlClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func request(_ command: String, at path: String, timeoutSeconds: Int) throws -> String {
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(description: "control socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
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
