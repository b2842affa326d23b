#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// sd_notify without libsystemd: one datagram of `KEY=value` lines to the Unix socket named by
/// `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Without the variable
/// (not run by systemd) every call does nothing. The socket is non-blocking: a notification
/// that cannot be sent at once is dropped, never waited for.
public final class SystemdNotifier: @unchecked Sendable {
    private let descriptor: CInt
    /// `NOTIFY_SOCKET` as given (a binary upgrade passes it on).
    public let path: String
    private let address: UnixSocketAddress
    /// `WATCHDOG_USEC`: systemd expects `WATCHDOG=1` at least this often.
    public let watchdogInterval: Int64?

    /// Reads (and unsets, so workers and upgraded binaries do not talk to systemd) the
    /// variables; nil when there is no notify socket.
    public static func fromEnvironment() -> SystemdNotifier? {
        let watchdog = getenv("WATCHDOG_USEC").flatMap { Int64(String(cString: $0)) }
        let watchdogPID = getenv("WATCHDOG_PID").flatMap { pid_t(String(cString: $0)) }
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        guard let path = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !path.isEmpty else { return nil }
        unsetenv("NOTIFY_SOCKET")
        let ours = watchdogPID == nil || watchdogPID == getpid()
        return SystemdNotifier(path: path, watchdogMicroseconds: ours ? watchdog : nil)
    }

    init?(path: String, watchdogMicroseconds: Int64?) {
        self.path = path
        guard let address = UnixSocketAddress(path) else { return nil }
        self.address = address
        descriptor = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
                            | CInt(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        watchdogInterval = watchdogMicroseconds
    }

    deinit { close(descriptor) }

    public func notify(_ fields: [String]) {
        let message = Array(fields.joined(separator: "\n").utf8)
        _ = message.withUnsafeBytes { bytes in
            address.withSockAddr { sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, $1) }
        }
    }

    public func ready(status: String) { notify(["READY=1", "STATUS=\(status)", "MAINPID=\(getpid())"]) }
    public func status(_ text: String) { notify(["STATUS=\(text)"]) }
    public func stopping() { notify(["STOPPING=1", "STATUS=draining connections"]) }
    public func watchdog() { notify(["WATCHDOG=1"]) }

    /// `Type=notify-reload` needs the monotonic time of the reload's start.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
        notify(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", "STATUS=reloading"])
    }
}

/// Sockets passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`): fds 3…3+n−1.
public enum SocketActivation {
    /// The passed descriptors, if they are meant for this process. The variables are unset
    /// so nothing spawned later takes them for its own.
    public static func takeDescriptors() -> [CInt] {
        defer {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count > 0,
              let pid = getenv("LISTEN_PID").flatMap({ pid_t(String(cString: $0)) }), pid == getpid() else {
            return []
        }
        return (0..<CInt(count)).map { 3 + $0 }
    }
}
