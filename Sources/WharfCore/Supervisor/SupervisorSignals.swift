#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The signals only the supervisor acts on: reload (SIGHUP), reopen the access log
/// (SIGUSR1), upgrade the binary (SIGUSR2). Workers and an upgraded supervisor are started
/// with them blocked (`ProcessSpawner`'s `blocking`), so one sent to the process group
/// before the new process has decided what they do waits instead of killing it; each
/// unblocks them once it has (a worker: ignored; a supervisor: handled).
enum SupervisorSignals {
    static let numbers = [SIGHUP, SIGUSR1, SIGUSR2]

    /// Unblocks them on the calling thread: one that waited is delivered now.
    static func unblock() {
        var set = sigset_t()
        sigemptyset(&set)
        for number in numbers { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
