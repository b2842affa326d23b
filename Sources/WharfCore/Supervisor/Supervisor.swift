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

/// How `wharf run` was started, for the workers it spawns and for reloads.
public struct SupervisorOptions: Sendable {
    /// The config file (nil: the embedded default), read again on every reload.
    public var configPath: String?
    /// `--log-level`, passed on to every worker.
    public var logLevel: String?
    /// Where to write the listeners' addresses once the first generation serves.
    public var readyFile: String?
    /// The command line after the executable, for a binary upgrade to start the new one alike.
    public var arguments: [String]

    public init(configPath: String?, logLevel: String?, readyFile: String?, arguments: [String]) {
        self.configPath = configPath
        self.logLevel = logLevel
        self.readyFile = readyFile
        self.arguments = arguments
    }
}

/// The result of a reload, as `wharf reload` reports it.
public enum ReloadResult: Sendable, Equatable {
    case serving(generation: Int)
    case failed(String)
}

/// The supervisor process: binds (or adopts) every listening socket, starts worker processes
/// that serve them, replaces workers that die, runs reloads, and drains on SIGTERM. It never
/// loads a plugin, so no plugin can take it down. All of its state lives on one event loop
/// thread; the decisions are `SupervisorStateMachine`'s, and this carries out its actions.
public final class Supervisor: @unchecked Sendable {
    let options: SupervisorOptions
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var eventLoop: any EventLoop { group.next() }
    var machine = SupervisorStateMachine()
    /// Per generation: its config and each slot's sockets, in listener order.
    var generations: [Int: (config: GatewayConfig, slots: [[ListeningSocket]])] = [:]
    /// Every socket held, by listener key: one per worker slot (index = slot).
    var socketGroups: [String: [ListeningSocket]] = [:]
    /// Each worker's control channel (a future: it is being registered while the worker starts).
    var controlChannels: [pid_t: EventLoopFuture<any Channel>] = [:]
    var reloadWaiters: [Int: [(ReloadResult) -> Void]] = [:]
    /// Every worker's counters, live and retired, and the supervisor's own.
    let metrics = MetricsCollector()
    /// Per-client tables, by listener socket key (shared by every generation serving it).
    var clientTables: [String: ClientTable] = [:]
    /// Each live worker's lane in those tables.
    var lanes: [pid_t: Int] = [:]
    /// What the status page shows beside the counters: per generation, when it was read and
    /// which plugin code its workers run (they report it; the supervisor loads no plugin).
    var generationStarted: [Int: Double] = [:]
    var generationPlugins: [Int: [PluginDescription]] = [:]
    let startedAt = WallClock.now
    var adminServer: (any Channel)?
    /// The `admin` section the endpoint was started with: fixed for the supervisor's life (a
    /// binary upgrade applies a changed one).
    var adminConfig: AdminConfig?
    /// The admin endpoint's socket, which the supervisor keeps (`adminServer` serves a dup).
    var adminSocket: ListeningSocket?
    /// The admin socket a binary upgrade handed over, until `start` claims it.
    var inheritedAdminSocket: ListeningSocket?
    var nextGeneration = 1
    var exitCode: Int32 = 0
    let exited = DispatchSemaphore(value: 0)
    let notifier = SystemdNotifier.fromEnvironment()
    var signalSources: [any DispatchSourceSignal] = []
    var controlServer: (any Channel)?
    var tick: RepeatedTask?
    /// The first generation's failure, for the message `wharf run` prints.
    public private(set) var startupFailure: String?
    /// This supervisor is handing over to a new binary (old side).
    var upgrade: UpgradeInProgress?
    /// This supervisor was started by a binary upgrade (new side): the old one's channel.
    var handover: EventLoopFuture<any Channel>?
    /// The file this executable was started from, read at startup (a binary upgrade starts
    /// whatever is at that path then).
    let executablePath = Supervisor.resolveExecutable()
    /// Keys every worker's TLS session tickets, across reloads (a binary upgrade makes a new
    /// one: clients then do one full handshake).
    private let ticketSecret = SessionTickets.makeSecret()

    public init(options: SupervisorOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Serves `config` until stopped; returns the exit status. Startup errors (a listener
    /// that cannot bind, a plugin that cannot load in the first workers) are printed by the
    /// caller from the log and exit with 1 or 2.
    public func run(_ config: GatewayConfig) -> Int32 {
        let inherited = SocketActivation.takeDescriptors()
        eventLoop.execute { self.start(config, inherited: inherited) }
        exited.wait()
        signalSources.forEach { $0.cancel() }
        try? group.syncShutdownGracefully()
        return exitCode
    }

    private func start(_ config: GatewayConfig, inherited: [CInt]) {
        let handedOver = takeHandover()
        do throws(GatewayError) {
            generations[1] = (config, try bindListeners(of: config, inherited: inherited))
        } catch {
            startupFailure = error.message
            finish(1)
            return
        }
        if let admin = config.admin {
            do throws(GatewayError) {
                adminSocket = try takeAdminSocket(admin)
                adminConfig = admin
            } catch {
                startupFailure = error.message
                closeAllSockets()
                finish(1)
                return
            }
            serveAdmin()
        }
        generationStarted[1] = WallClock.now
        installSignalHandlers()
        if let path = config.controlSocket { startControlServer(at: path) }
        tick = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            self.reapChildren()
            self.perform(self.machine.tick(at: .now()))
        }
        if let interval = notifier?.watchdogInterval, interval > 0 {
            let half = TimeAmount.microseconds(interval / 2)
            eventLoop.scheduleRepeatedTask(initialDelay: half, delay: half) { _ in
                // Only while every serving worker's event loops answer heartbeats.
                if self.machine.workersAlive(at: .now(), within: half) { self.notifier?.watchdog() }
            }
        }
        nextGeneration = 2
        perform(machine.start(GenerationSettings(number: 1, config: config), holdAccept: handedOver))
    }

    // MARK: Workers

    /// Closes a waiting slot's sockets (see `SupervisorAction.suspend`).
    private func suspend(generation number: Int, slot: Int) {
        guard let slots = generations[number]?.slots, slot < slots.count else { return }
        slots[slot].forEach { $0.close() }
        logger.notice("slot \(slot) of generation \(number): its sockets are closed while it waits; new connections go to the other workers")
    }

    /// Binds a suspended slot's sockets again, into the same groups.
    private func resume(generation number: Int, slot: Int) throws(GatewayError) {
        guard let (config, slots) = generations[number], slots[slot].contains(where: \.isClosed) else { return }
        for (index, listener) in config.listeners.enumerated() where slots[slot][index].isClosed {
            let key = ListeningSocket.key(of: listener, index: index)
            let socket = try ListeningSocket.join(slots[slot][index], for: listener, index: index)
            generations[number]?.slots[slot][index] = socket
            if var group = socketGroups[key], slot < group.count {
                group[slot] = socket
                socketGroups[key] = group
            }
        }
    }

    private func spawnWorker(generation number: Int, slot: Int) {
        do throws(GatewayError) {
            try resume(generation: number, slot: slot)
        } catch {
            perform(machine.spawnFailed(generation: number, slot: slot, reason: error.message, at: .now()))
            return
        }
        guard let (config, slots) = generations[number], slot < slots.count else { return }
        guard let segment = MetricsSegment.create(MetricsLayout(config)) else {
            perform(machine.spawnFailed(generation: number, slot: slot,
                                        reason: "cannot create the metrics segment: \(ListeningSocket.errorText())", at: .now()))
            return
        }
        guard let pair = ControlChannel.pair() else {
            perform(machine.spawnFailed(generation: number, slot: slot, reason: "socketpair: \(ListeningSocket.errorText())",
                                        at: .now()))
            return
        }
        let tables: [ClientTable]
        do throws(GatewayError) {
            tables = try clientTables(for: config)
        } catch {
            close(pair.local)
            close(pair.remote)
            perform(machine.spawnFailed(generation: number, slot: slot, reason: error.message, at: .now()))
            return
        }
        let lane = (0..<ClientTable.lanes).first { !Set(lanes.values).contains($0) } ?? -1
        var arguments = ["worker", "--generation", "\(number)", "--slot", "\(slot)", "--lane", "\(lane)",
                         "--config-name", config.source, "--base-directory", config.baseDirectory]
        if let level = options.logLevel { arguments += ["--log-level", level] }
        let pid: pid_t
        do throws(ProcessSpawner.Failure) {
            pid = try ProcessSpawner.spawn("/proc/self/exe", arguments: arguments, name: "wharf",
                                           descriptors: [pair.remote, segment.descriptor] + slots[slot].map(\.descriptor)
                                               + tables.map(\.descriptor),
                                           environment: Self.workerEnvironment,
                                           blocking: SupervisorSignals.numbers)
        } catch {
            close(pair.local)
            close(pair.remote)
            perform(machine.spawnFailed(generation: number, slot: slot, reason: error.description, at: .now()))
            return
        }
        close(pair.remote)
        segment.closeDescriptor()
        // Known to the machine before anything can see it end: a child that died at once
        // (its control socket closes, a write to it fails) is reaped as soon as its death is
        // seen, and a death reaped before `spawned` was lost: the generation then waited for
        // a worker that no longer existed, and a stop waited with it. Its actions (a `stop`
        // to a worker spawned for a failed generation) go out after its config.
        let registered = machine.spawned(pid: pid, generation: number, slot: slot, at: .now())
        if lane >= 0 { lanes[pid] = lane }
        metrics.started(pid, segment: segment, generation: number, slot: slot)
        let channel = ControlChannel.open(pair.local, on: eventLoop, onLine: { line in
            guard let message = WorkerMessage(line: line) else { return }
            if case let .plugin(description) = message {
                var known = self.generationPlugins[number] ?? []
                if !known.contains(description) { known.append(description) }
                self.generationPlugins[number] = known
            }
            self.perform(self.machine.received(message, from: pid, at: .now()))
        }, onClose: { self.controlClosed(pid) })
        controlChannels[pid] = channel
        send(SupervisorMessage.config(config.text, ticketSecret: ticketSecret), to: pid)
        logger.debug("started worker \(pid) (generation \(number), slot \(slot))")
        perform(registered)
    }

    /// The supervisor's environment, with Swift's crash backtracer off unless the operator
    /// set it: symbolicating a crashed plugin's stack takes seconds, during which the dead
    /// worker's connections hang and its replacement cannot start. Core dumps still work.
    static let workerEnvironment: [String] = {
        var environment = currentEnvironment
        if !environment.contains(where: { $0.hasPrefix("SWIFT_BACKTRACE=") }) {
            environment.append("SWIFT_BACKTRACE=enable=no")
        }
        return environment
    }()

    private func send(_ text: String, to pid: pid_t) {
        controlChannels[pid]?.whenSuccess { $0.writeAndFlush(ByteBuffer(string: text), promise: nil) }
    }

    private func controlClosed(_ pid: pid_t) {
        controlChannels[pid] = nil
        reapChildren()
    }

    /// Collects every child that ended (event-driven through the control channel's end of
    /// file, and from the periodic tick as a safety net).
    func reapChildren() {
        while true {
            var status: CInt = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            if pid == upgrade?.pid {
                upgradeEnded(status: status)
                continue
            }
            controlChannels.removeValue(forKey: pid)?.whenSuccess { $0.close(promise: nil) }
            metrics.exited(pid, failure: machine.failureCause(of: pid, status: status))
            if let lane = lanes.removeValue(forKey: pid) { clientTables.values.forEach { $0.clearLane(lane) } }
            perform(machine.exited(pid: pid, status: status, at: .now()))
        }
    }

    // MARK: Actions

    func perform(_ actions: [SupervisorAction]) {
        for action in actions {
            switch action {
            case let .spawn(generation, slot):
                spawnWorker(generation: generation, slot: slot)
            case let .send(message, pid):
                send(message.line, to: pid)
            case let .kill(pid):
                kill(pid, SIGKILL)
            case let .serving(generation, replaced):
                generationServes(generation, replacing: replaced)
            case let .failed(generation, _, reason):
                generationFailed(generation, reason: reason)
            case let .release(generation):
                generations[generation] = nil
                releaseUnusedClientTables()
                generationStarted[generation] = nil
                generationPlugins[generation] = nil
                closeUnusedSockets()
            case .closeUnusedSockets:
                closeUnusedSockets()
            case let .suspend(generation, slot):
                suspend(generation: generation, slot: slot)
            case .handoverReady:
                handover?.whenSuccess { $0.writeAndFlush(ByteBuffer(string: "ready\n"), promise: nil) }
            case let .log(level, message):
                logger.log(level: level, "\(message)")
            case let .exit(code):
                finish(code)
            }
        }
        if upgrade != nil { upgradeProgressed() }
    }

    private func generationServes(_ number: Int, replacing replaced: Int?) {
        guard let (config, slots) = generations[number] else { return }
        let listeners = zip(config.listeners, slots[0]).map { listener, socket in
            BoundListener(config: listener, address: socket.boundAddress, port: socket.boundPort, pluginSummary: "")
        }
        let summary = "generation \(number): \(config.processes) worker process(es), \(config.eventLoops) event loop(s) each"
        if number > 1 { metrics.reloaded(ok: true) }
        if let replaced {
            logger.notice("reloaded: \(summary) serves; generation \(replaced) drains")
        } else {
            logger.info("serving \(summary)")
        }
        if let readyFile = options.readyFile { ReadyFile.write(listeners, to: readyFile, logger: logger) }
        notifier?.ready(status: "serving \(summary)")
        reloadWaiters.removeValue(forKey: number)?.forEach { $0(.serving(generation: number)) }
    }

    private func generationFailed(_ number: Int, reason: String) {
        logger.error("generation \(number) did not start: \(reason)")
        if number == 1 {
            startupFailure = reason
        } else {
            keepServing(afterFailedReload: reason)
        }
        reloadWaiters.removeValue(forKey: number)?.forEach { $0(.failed(reason)) }
    }

    private func finish(_ code: Int32) {
        exitCode = code
        tick?.cancel()
        controlServer?.close(promise: nil)
        adminServer?.close(promise: nil)
        adminSocket?.close()
        // After an upgrade the path is the new supervisor's.
        if upgrade == nil, let path = generations.values.first?.config.controlSocket { unlink(path) }
        closeAllSockets()
        exited.signal()
    }
}

extension BoundListener {
    /// `address:port`, with IPv6 addresses in brackets.
    public var endpoint: String { Endpoint.text(address, port) }
}
