import CWharfLinux

/// How the kernel schedules a relay pump's thread (`relay_pump_scheduling`).
///
/// A loop and its pump hand work to each other: accepted sockets, relays to start, relays
/// that ended. When both share a CPU, every hand-off under the default policy wakes the other
/// thread straight away and preempts the one that is mid-batch, so a connection costs one or
/// two context switches that a single-threaded proxy never pays (`bench/README.md`, "Pump
/// scheduling"). Under `batch` (SCHED_BATCH) a woken pump waits for the loop to finish its
/// turn; on a machine with an idle CPU to wake on, nothing changes. What it trades: on a CPU
/// that other busy programs share, a pump woken by traffic waits for the running one's time
/// slice to end instead of preempting it.
public enum PumpScheduling: String, Sendable, CaseIterable {
    case batch
    case normal

    /// Applies the policy to the calling thread; false if the kernel refused it.
    func applyToCurrentThread() -> Bool {
        cwharf_set_batch_scheduling(self == .batch ? 1 : 0) == 0
    }
}
