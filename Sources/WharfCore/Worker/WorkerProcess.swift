import CWharfLinux
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One worker process (`wharf worker`, spawned by the supervisor): serves the listening
/// sockets it inherited (fd 5 on, in listener order) with its own event loops and plugin
/// instances, counts into the metrics segment at fd 4 (and per client into the tables after
/// the sockets, one per listener with `per_client` limits), and talks to the supervisor over
/// fd 3 (see `WorkerMessage`).
///
/// It leaves when told to (`retire` after a reload keeps its connections until they end;
/// `drain` also closes idle ones), on SIGTERM/SIGINT (a drain), or when the supervisor is
/// gone (end of file on fd 3: no orphans, even after a SIGKILL of the supervisor). `stop`, or
/// a second signal, closes what is still open at once.
public final class WorkerProcess: @unchecked Sendable {
    public struct Identity: Sendable {
        public var generation: Int
        public var slot: Int
        /// Its column in the listeners' per-client tables.
        public var lane: Int
        /// For messages and relative paths: the config file the text came from.
        public var configName: String
        public var baseDirectory: String

        public init(generation: Int, slot: Int, lane: Int = -1, configName: String, baseDirectory: String) {
            self.generation = generation
            self.slot = slot
            self.lane = lane
            self.configName = configName
            self.baseDirectory = baseDirectory
        }
    }

    static let controlDescriptor: CInt = 3
    static let metricsDescriptor: CInt = 4
    static let firstListenerDescriptor: CInt = 5
    /// How often the loops prove they turn; the supervisor allows worker_stall_timeout_ms.
    static let heartbeat = TimeAmount.milliseconds(500)

    private let identity: Identity
    private var logger = Logger(label: "wharf")
    private let leave = DispatchSemaphore(value: 0)
    private let stopRequests = NIOLockedValueBox(0)
    /// Whether leaving closes idle connections (a stop) or lets them run (a reload's retire).
    private let quiesce = NIOLockedValueBox(true)
    private var gateway: Gateway?
    private var control: (any Channel)?

    public init(identity: Identity) {
        self.identity = identity
    }

    /// Reads the config the supervisor sends first. `configure` sets up logging from it
    /// before anything logs. Returns the exit status.
    public func run(configure: (GatewayConfig) -> Void) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        Self.ignoreSupervisorSignals()
        let config: GatewayConfig
        do {
            let (text, ticketSecret) = try ControlInput.readConfig(from: Self.controlDescriptor)
            // Before the config makes its TLS contexts, which take the shared ticket keys.
            if let ticketSecret { SessionTickets.configure(secret: ticketSecret) }
            config = try ConfigLoader.parse(text, file: identity.configName, baseDirectory: identity.baseDirectory)
        } catch {
            report(.failed(.plugin, "worker: \(error)"))
            return 2
        }
        configure(config)
        logger = Logger(label: "wharf")
        logger[metadataKey: "worker"] = "\(getpid())"
        if let failure = Privileges.drop(user: config.user, group: config.group) {
            report(.failed(.plugin, failure))
            return 2
        }
        let sockets = config.listeners.enumerated().map { index, listener in
            ListeningSocket.adopt(descriptor: Self.firstListenerDescriptor + CInt(index),
                                  key: ListeningSocket.key(of: listener, index: index))
        }
        let gateway: Gateway
        do throws(GatewayError) {
            let clientTables = try Self.attachClientTables(config)
            let segment = MetricsSegment.attach(Self.metricsDescriptor, MetricsLayout(config))
            if segment == nil { logger.warning("the metrics segment from the supervisor is unusable: this worker's counts are not reported") }
            gateway = try Gateway(config: config, logger: logger, metrics: segment, generation: identity.generation,
                                  clientTables: clientTables, clientLane: identity.lane)
            // Paused until the supervisor says `accept`: the worker this one replaces may
            // still be accepting from the same sockets.
            let listeners = try gateway.start(sockets: sockets, accepting: false)
            // One worker of each generation says which plugin code serves where.
            if identity.slot == 0 {
                for listener in listeners {
                    var pump = listener.acceptedByPump ? ", accepted by the relay pump" : ""
                    if listener.acceptedByPump, let tls = listener.config.tls?.pumpContexts {
                        pump += ", TLS by \(tls.libraryDescription)"
                    }
                    logger.info("generation \(identity.generation): \(listener.endpoint) → \(listener.config.plugin) (\(listener.pluginSummary))\(pump)")
                }
            }
        } catch {
            report(.failed(error.kind, error.message))
            return error.kind == .listen ? 1 : 2
        }
        self.gateway = gateway
        installSignalHandlers()
        connectControl(on: gateway.eventLoops[0])
        startHeartbeat(gateway)

        leave.wait()
        gateway.stopAccepting()
        control?.writeAndFlush(ByteBuffer(string: WorkerMessage.released.line), promise: nil)
        gateway.shutdown(quiesce: quiesce.withLockedValue { $0 })
        return 0
    }

    /// The per-client tables the supervisor passed after the listening sockets.
    private static func attachClientTables(_ config: GatewayConfig) throws(GatewayError) -> [Int: ClientTable] {
        var tables: [Int: ClientTable] = [:]
        var descriptor = firstListenerDescriptor + CInt(config.listeners.count)
        for (index, listener) in config.listeners.enumerated() where listener.perClient.isEnabled {
            guard let table = ClientTable.attach(descriptor, capacity: listener.perClient.tableSize) else {
                throw GatewayError(kind: .listen, message: "\(listener.location): the per-client table passed for "
                    + "\(listener.displayName) is unusable")
            }
            tables[index] = table
            descriptor += 1
        }
        return tables
    }

    /// The first request starts leaving; `drain` after `retire` closes idle connections too;
    /// `stop`, or a second signal, closes everything now.
    private func requestLeave(_ message: SupervisorMessage) {
        let first = stopRequests.withLockedValue { count in
            count += 1
            return count == 1
        }
        switch message {
        case .retire:
            if first { quiesce.withLockedValue { $0 = false } }
        case .drain:
            if !first { gateway?.quiesceAll() }
        case .stop:
            gateway?.closeAllNow()
        case .accept, .reopen:
            return
        }
        if first { leave.signal() }
    }

    /// SIGTERM/SIGINT: drain; a second one stops.
    private func signalled() {
        requestLeave(stopRequests.withLockedValue { $0 } == 0 ? .drain : .stop)
    }

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { self.signalled() }
            source.resume()
            signalSources.append(source)
        }
    }

    /// What the supervisor handles: a worker that gets one (a process-group signal) ignores
    /// it, from here on. One sent while the worker started waited, blocked
    /// (`SupervisorSignals`), and is dropped here instead of killing a worker that is
    /// starting for a reload.
    private static func ignoreSupervisorSignals() {
        for number in SupervisorSignals.numbers { signal(number, SIG_IGN) } // discards one already pending
        SupervisorSignals.unblock()
    }

    private var signalSources: [any DispatchSourceSignal] = []
    private var heartbeatTimer: (any DispatchSourceTimer)?

    private func reopenAccessLog() {
        guard let log = gateway?.accessLog else { return }
        if let failure = log.reopen() {
            logger.error("\(failure); the access log goes on to the file that was open")
        } else {
            logger.info("reopened the access log \(log.config.path ?? "")")
        }
    }

    private func connectControl(on eventLoop: any EventLoop) {
        let channel = try? ControlChannel.open(Self.controlDescriptor, on: eventLoop, onLine: { line in
            switch SupervisorMessage(rawValue: String(line)) {
            case .accept: self.gateway?.startAccepting()
            case .reopen: self.reopenAccessLog()
            case let message?: self.requestLeave(message)
            case nil: self.logger.warning("unknown control message '\(line)'")
            }
        }, onClose: {
            // Our own shutdown closes it too; only an unasked close means the supervisor died.
            guard self.stopRequests.withLockedValue({ $0 }) == 0 else { return }
            self.logger.notice("the supervisor is gone: draining")
            self.requestLeave(.drain)
        }).wait()
        control = channel
        if identity.slot == 0, let gateway {
            for plugin in gateway.plugins { channel?.write(ByteBuffer(string: WorkerMessage.plugin(plugin).line), promise: nil) }
        }
        channel?.writeAndFlush(ByteBuffer(string: WorkerMessage.ready.line), promise: nil)
    }

    /// Sends `alive` while every loop has run within the last second (the gateway's
    /// `LoopWatch`), so one stuck loop (a plugin in an endless loop) silences the worker. It
    /// also turns the log sinks' drop counts into metrics. A timer off the loops: no task
    /// scheduled on a loop (see `LoopWatch`).
    private func startHeartbeat(_ gateway: Gateway) {
        let watch = gateway.loopWatch
        let metrics = gateway.metrics
        let accessLog = gateway.accessLog
        let droppedReported = NIOLockedValueBox((log: 0, access: 0))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "wharf-heartbeat"))
        let interval = Int(Self.heartbeat.nanoseconds / 1_000_000)
        timer.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        heartbeatTimer = timer
        timer.setEventHandler {
            let now = cwharf_monotonic_ms()
            if watch.loops.indices.allSatisfy({ watch.silence($0, now: now) < 1000 }) {
                self.control?.writeAndFlush(ByteBuffer(string: WorkerMessage.alive.line), promise: nil)
            }
            let dropped = (log: LogSink.standardError.droppedLines, access: accessLog?.droppedLines ?? 0)
            let newly = droppedReported.withLockedValue { reported in
                defer { reported = dropped }
                return (log: dropped.log - reported.log, access: dropped.access - reported.access)
            }
            if newly.log > 0 { metrics.logLinesDropped(newly.log) }
            if newly.access > 0 { metrics.accessLogLinesDropped(newly.access) }
        }
        timer.resume()
    }

    /// Before the event loops exist: a plain blocking write of the one failure line.
    private func report(_ message: WorkerMessage) {
        Descriptor.writeAll(Self.controlDescriptor, Array(message.line.utf8))
    }
}
