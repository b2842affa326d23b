import CWharfLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts a program with chosen descriptors at fixed numbers (`descriptors[i]` becomes fd
/// `3 + i`) and nothing else above 2 inherited: posix_spawn, never a bare fork, because the
/// supervisor is a multi-threaded Swift process. Signals start at their defaults and unblocked
/// whatever the supervisor did with them, except `blocking`.
public enum ProcessSpawner {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `name` is the child's argv[0] (what `ps` shows), by default `executable`. `blocking`:
    /// signals that stay pending from the exec until the child has decided what they do (a
    /// worker ignores the supervisor's signals; until it said so, a hang-up sent to the
    /// process group killed workers starting for a reload).
    public static func spawn(_ executable: String, arguments: [String], name: String? = nil, descriptors: [CInt],
                             environment: [String]? = nil, blocking: [CInt] = []) throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Two passes, so a source that already sits at some other entry's target number is
        // moved out of the way before it is overwritten. dup2 clears close-on-exec.
        let parking = (descriptors.max() ?? 0) + CInt(descriptors.count) + 4
        for (index, descriptor) in descriptors.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, descriptor, parking + CInt(index))
        }
        for index in descriptors.indices {
            posix_spawn_file_actions_adddup2(&actions, parking + CInt(index), 3 + CInt(index))
        }
        // Whatever else is open without close-on-exec (inherited by this process, e.g. a
        // test harness's exit-watch socket) must not outlive it in the child.
        cwharf_spawn_close_from(&actions, 3 + CInt(descriptors.count))

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), blocked = sigset_t()
        sigfillset(&all)
        sigemptyset(&blocked)
        for number in blocking { sigaddset(&blocked, number) }
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &blocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([name ?? executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { arguments in
            if let envp {
                return envp.withUnsafeBufferPointer {
                    posix_spawn(&pid, executable, &actions, &attributes, arguments.baseAddress!, $0.baseAddress)
                }
            }
            return posix_spawn(&pid, executable, &actions, &attributes, arguments.baseAddress!, environ)
        }
        guard result == 0 else {
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(result)).lowercased())")
        }
        return pid
    }

    /// How a child ended, as an operator reads it.
    public static func describe(status: CInt) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        let name = signalName(signal)
        return (status & 0x80) != 0 ? "killed by \(name) (core dumped)" : "killed by \(name)"
    }

    /// Whether the child ended cleanly (exit status 0).
    public static func exitedCleanly(status: CInt) -> Bool { status & 0x7f == 0 && (status >> 8) & 0xff == 0 }

    public static func signalName(_ number: CInt) -> String {
        let names: [CInt: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM",
                                     SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGILL: "SIGILL", SIGINT: "SIGINT",
                                     SIGHUP: "SIGHUP", SIGTRAP: "SIGTRAP", SIGPIPE: "SIGPIPE"]
        return names[number] ?? "signal \(number)"
    }
}
