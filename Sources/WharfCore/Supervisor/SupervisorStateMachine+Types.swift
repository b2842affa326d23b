import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the supervisor's runtime must do; the machine itself does no I/O.
public enum SupervisorAction: Equatable, Sendable {
    /// Start a worker process for `slot` of `generation`, then report `spawned` or `spawnFailed`.
    case spawn(generation: Int, slot: Int)
    /// Say this on the worker's control channel.
    case send(SupervisorMessage, to: pid_t)
    /// A worker stopped accepting or exited: close the sockets nobody can accept from.
    case closeUnusedSockets
    /// A crash-looping slot waits before its next start: close its sockets meanwhile, so new
    /// connections go to the other workers instead of waiting in a queue nobody accepts
    /// from (bound again when the slot starts).
    case suspend(generation: Int, slot: Int)
    /// SIGKILL: the worker does not answer (stalled, or past its drain deadline).
    case kill(pid_t)
    /// Every worker of `generation` is ready; `replaced` (if any) now drains. The first time
    /// this is startup: notify systemd, write the ready file. Later it is a reload's success.
    case serving(generation: Int, replaced: Int?)
    /// Started by a binary upgrade: every worker is ready but waits, paused, until the old
    /// supervisor's workers stopped accepting (`releaseHandover`).
    case handoverReady
    /// `generation` could not start; whatever served before keeps serving.
    case failed(generation: Int, GatewayError.Kind, String)
    /// No worker of `generation` is left: close the sockets no live generation uses.
    case release(generation: Int)
    case log(Logger.Level, String)
    case exit(Int32)
}

/// What a generation needs from its config, for the machine.
public struct GenerationSettings: Sendable, Equatable {
    public var number: Int
    public var processes: Int
    public var drainTimeout: TimeAmount
    /// nil: no stall detection.
    public var stallTimeout: TimeAmount?
    public var maxGenerations: Int
    /// The plugin instances its workers run, for crash reports.
    public var plugins: String

    public init(number: Int, processes: Int, drainTimeout: TimeAmount, stallTimeout: TimeAmount?, maxGenerations: Int,
                plugins: String = "") {
        self.number = number
        self.plugins = plugins
        self.processes = processes
        self.drainTimeout = drainTimeout
        self.stallTimeout = stallTimeout
        self.maxGenerations = maxGenerations
    }

    public init(number: Int, config: GatewayConfig) {
        let stall = config.workerStallTimeoutMilliseconds
        self.init(number: number, processes: config.processes,
                  drainTimeout: .milliseconds(Int64(config.drainTimeoutMilliseconds)),
                  stallTimeout: stall > 0 ? .milliseconds(Int64(stall)) : nil, maxGenerations: config.maxGenerations,
                  plugins: config.plugins.map { "\($0.name) (\($0.path))" }.joined(separator: ", "))
    }
}

extension SupervisorStateMachine {
    public enum Phase: Equatable, Sendable {
        /// The first generation is starting: nothing is ready yet.
        case starting
        case running
        /// SIGTERM: every worker drains; the process exits when the last one is gone.
        case stopping
        case stopped
    }

    struct Worker {
        enum State: Equatable {
            case starting(deadline: NIODeadline)
            case serving
            /// Told to drain (or, for a worker that failed to start, to stop); killed if still
            /// there at `deadline`.
            case leaving(deadline: NIODeadline)
        }

        let pid: pid_t
        let generation: Int
        let slot: Int
        let startedAt: NIODeadline
        var state: State
        var lastAlive: NIODeadline
        /// Told to accept from its slot's sockets (it starts paused).
        var accepting = false
        /// Ready, waiting for the worker it replaces in its slot to stop accepting, since then.
        var waitingToAccept: NIODeadline?
        /// Said it stopped accepting: its slot's sockets are free of it.
        var released = false
        /// What it was last told to do (retire, drain or stop).
        var told: SupervisorMessage?
    }

    struct Generation {
        enum State: Equatable {
            case starting
            case serving
            case draining
            /// Did not start; its workers are being stopped.
            case failed
        }

        let settings: GenerationSettings
        var state: State = .starting
        var restarts: [RestartPolicy]
        /// Slots whose worker crashed, with when to start the next one.
        var respawnAt: [Int: NIODeadline] = [:]
        /// Serving since `since`, not yet announced: the workers it replaces may still be
        /// accepting. Announced (`.serving`) once they all let go.
        var pendingAnnouncement: (replaced: Int?, since: NIODeadline)?

        init(settings: GenerationSettings) {
            self.settings = settings
            restarts = Array(repeating: RestartPolicy(), count: settings.processes)
        }
    }
}
