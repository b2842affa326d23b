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

    public init(configPath: String?, logLevel: String?, readyFile: String?) {
        self.configPath = configPath
        self.logLevel = logLevel
        self.readyFile = readyFile
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
    /// Per generation: its config and, in listener order, its sockets.
    var generations: [Int: (config: GatewayConfig, sockets: [ListeningSocket])] = [:]
    var sockets: [String: ListeningSocket] = [:]
    /// Each worker's control channel (a future: it is being registered while the worker starts).
    var controlChannels: [pid_t: EventLoopFuture<any Channel>] = [:]
    var reloadWaiters: [Int: [(ReloadResult) -> Void]] = [:]
    var nextGeneration = 1
    var exitCode: Int32 = 0
    let exited = DispatchSemaphore(value: 0)
    let notifier = SystemdNotifier.fromEnvironment()
    var signalSources: [any DispatchSourceSignal] = []
    var controlServer: (any Channel)?
    var tick: RepeatedTask?

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
        do throws(GatewayError) {
            let bound = try bindListeners(of: config, inherited: inherited)
            generations[1] = (config, bound)
        } catch {
            logger.error("\(error.message)")
            finish(1)
            return
        }
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
        perform(machine.start(GenerationSettings(number: 1, config: config)))
    }

    // MARK: Listening sockets

    /// The sockets for `config`'s listeners, in order: the one a live generation already
    /// has for the same address and port, an inherited one bound there, or a new one.
    /// Sockets this call bound are closed again if a later one fails.
    func bindListeners(of config: GatewayConfig, inherited: [CInt] = []) throws(GatewayError)
        -> [ListeningSocket] {
        var result: [ListeningSocket] = []
        var fresh: [ListeningSocket] = []
        var unclaimed = inherited
        for (index, listener) in config.listeners.enumerated() {
            let key = ListeningSocket.key(of: listener)
            if let existing = sockets[key] {
                result.append(existing)
                continue
            }
            let socket: ListeningSocket
            if let match = unclaimed.firstIndex(where: {
                ListeningSocket.adopt(descriptor: $0, key: key).isBound(to: listener)
            }) {
                socket = ListeningSocket.adopt(descriptor: unclaimed.remove(at: match), key: key)
                socket.configure(for: listener)
                logger.info("using the socket passed for \(key) (fd \(socket.descriptor))")
            } else {
                do throws(GatewayError) {
                    socket = try ListeningSocket.bind(listener, index: index)
                } catch {
                    fresh.forEach { $0.close() }
                    throw error
                }
            }
            fresh.append(socket)
            result.append(socket)
        }
        for descriptor in unclaimed {
            logger.warning("an inherited socket (fd \(descriptor)) matches no listener; closing it")
            close(descriptor)
        }
        for socket in fresh {
            sockets[socket.key] = socket
            logger.info("listening on \(socket.boundAddress.contains(":") ? "[\(socket.boundAddress)]" : socket.boundAddress):\(socket.boundPort)")
        }
        return result
    }

    /// Closes the sockets no remaining generation listens on.
    private func releaseUnusedSockets() {
        let used = Set(generations.values.flatMap { $0.sockets.map(\.key) })
        for (key, socket) in sockets where !used.contains(key) {
            logger.info("no longer listening on \(key)")
            socket.close()
            sockets[key] = nil
        }
    }

    // MARK: Workers

    private func spawnWorker(generation number: Int, slot: Int) {
        guard let (config, bound) = generations[number] else { return }
        var pair: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            perform(machine.spawnFailed(generation: number, slot: slot, reason: "socketpair: \(ListeningSocket.errorText())",
                                        at: .now()))
            return
        }
        var arguments = ["worker", "--generation", "\(number)", "--slot", "\(slot)",
                         "--config-name", config.source, "--base-directory", config.baseDirectory]
        if let level = options.logLevel { arguments += ["--log-level", level] }
        let pid: pid_t
        do throws(ProcessSpawner.Failure) {
            pid = try ProcessSpawner.spawn("/proc/self/exe", arguments: arguments, name: "wharf",
                                           descriptors: [pair[1]] + bound.map(\.descriptor))
        } catch {
            close(pair[0])
            close(pair[1])
            perform(machine.spawnFailed(generation: number, slot: slot, reason: error.description, at: .now()))
            return
        }
        close(pair[1])
        let channel = ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlLineHandler(
                        onLine: { line in
                            guard let message = WorkerMessage(line: line) else { return }
                            self.perform(self.machine.received(message, from: pid, at: .now()))
                        },
                        onClose: { self.controlClosed(pid) }))
                }
            }
            .withConnectedSocket(pair[0])
        controlChannels[pid] = channel
        send(SupervisorMessage.config(config.text), to: pid)
        logger.debug("started worker \(pid) (generation \(number), slot \(slot))")
        perform(machine.spawned(pid: pid, generation: number, slot: slot, at: .now()))
    }

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
            controlChannels.removeValue(forKey: pid)?.whenSuccess { $0.close(promise: nil) }
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
                releaseUnusedSockets()
            case let .log(level, message):
                logger.log(level: level, "\(message)")
            case let .exit(code):
                finish(code)
            }
        }
    }

    private func generationServes(_ number: Int, replacing replaced: Int?) {
        guard let (config, bound) = generations[number] else { return }
        let listeners = zip(config.listeners, bound).map { listener, socket in
            BoundListener(config: listener, address: socket.boundAddress, port: socket.boundPort, pluginSummary: "")
        }
        let summary = "generation \(number): \(config.processes) worker process(es), \(config.eventLoops) event loop(s) each"
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
            logger.notice("the previous generation keeps serving")
            if let serving = machine.servingGeneration {
                notifier?.ready(status: "serving generation \(serving); the last reload failed: \(reason)")
            }
        }
        reloadWaiters.removeValue(forKey: number)?.forEach { $0(.failed(reason)) }
    }

    /// The first generation's failure, for the message `wharf run` prints.
    public private(set) var startupFailure: String?

    private func finish(_ code: Int32) {
        exitCode = code
        tick?.cancel()
        controlServer?.close(promise: nil)
        if let path = generations.values.first?.config.controlSocket { unlink(path) }
        sockets.values.forEach { $0.close() }
        sockets.removeAll()
        exited.signal()
    }
}

extension BoundListener {
    /// `address:port`, with IPv6 addresses in brackets.
    public var endpoint: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
}
