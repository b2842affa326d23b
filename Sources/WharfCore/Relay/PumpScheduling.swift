import CWharfLinux

/// How the kernel schedules a relay pump's thread (`relay_pump_scheduling`).
///
/// A loop and its pump hand work to each other: accepted sockets, relays to start, relays
/// that ended. When both share a CPU, every hand-off under the default policy wakes the other
/// thread straight away and preempts the one that is mid-batch, so a connection costs one or
/// two context switches that a single-threaded proxy never pays. Under `batch` (SCHED_BATCH)
/// a woken pump never preempts: it waits for the running thread to sleep or for the next
/// tick. That is a quarter more proxied connections per second on a shared CPU, and nothing
/// on a machine with an idle CPU for the pump to wake on (`bench/README.md`, "Pump
/// scheduling").
///
/// What it trades: bytes relayed while the loop (or any other program on that CPU) runs
/// long work wait for it. With TLS handshakes on the same loop, a relayed round trip's median
/// went from 0.3 to 1.5-2.6 ms. So `auto`, the default, chooses `batch` only for a generation
/// whose every listener the relay pump accepts: the loop's work is then the short hand-offs
/// to the pump.
public enum PumpScheduling: String, Sendable, CaseIterable {
    case auto
    case batch
    case normal

    /// The policy for a generation; `everyListenerPumped`: the relay pump accepts for each of
    /// its listeners (`PumpAcceptor`).
    func resolved(everyListenerPumped: Bool) -> PumpScheduling {
        guard self == .auto else { return self }
        return everyListenerPumped ? .batch : .normal
    }

    /// Applies a resolved policy to the calling thread; false if the kernel refused it.
    func applyToCurrentThread() -> Bool {
        cwharf_set_batch_scheduling(self == .batch ? 1 : 0) == 0
    }
}
