import NIOCore
import Synchronization

/// At most one log line a second for an event that can repeat thousands of times (refusals,
/// accept failures): `record` counts an occurrence and, when a line is due, returns how many
/// occurrences it stands for, this one included.
final class OncePerSecond: Sendable {
    private let state = Mutex<(last: NIODeadline?, unreported: Int)>((nil, 0))

    func record(at now: NIODeadline = .now()) -> Int? {
        state.withLock { state in
            state.unreported += 1
            if let last = state.last, now - last < .seconds(1) { return nil }
            defer { state = (now, 0) }
            return state.unreported
        }
    }
}
