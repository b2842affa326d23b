import Dispatch
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signals, reloads and the control socket.
extension Supervisor {
    /// SIGTERM/SIGINT drain (a second one stops at once), SIGHUP reloads, SIGUSR2 upgrades the
    /// binary, SIGUSR1 is logged and otherwise ignored: no signal an operator commonly sends
    /// kills Wharf by accident.
    func installSignalHandlers() {
        let handlers: [(CInt, @Sendable () -> Void)] = [
            (SIGTERM, { self.stop() }),
            (SIGINT, { self.stop() }),
            (SIGHUP, { self.reload { _ in } }),
            (SIGUSR1, { self.reopenLogs() }),
            (SIGUSR2, { self.startUpgrade { _ in } }),
        ]
        signalSources = handlers.map { number, handler in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { self.eventLoop.execute(handler) }
            source.resume()
            return source
        }
        // A supervisor started by a binary upgrade begins with these blocked; one that came
        // meanwhile is handled now.
        SupervisorSignals.unblock()
    }

    /// SIGUSR1 (log rotation): every worker opens the access log file again.
    private func reopenLogs() {
        let workers = machine.workerIDs
        guard generations.values.contains(where: { $0.config.accessLog?.path != nil }) else {
            logger.notice("SIGUSR1: no access log file to reopen (logs go to standard error)")
            return
        }
        logger.notice("SIGUSR1: reopening the access log in \(workers.count) worker(s)")
        for pid in workers { perform([.send(.reopen, to: pid)]) }
    }

    private func stop() {
        let first = machine.phase != .stopping
        if first {
            logger.notice("stopping: no new connections; open ones get drain_timeout_ms to finish")
            notifier?.stopping()
        }
        perform(machine.terminate(at: .now()))
        if first {
            // The workers close their copies as they start draining; once ours is closed too,
            // new connections are refused rather than left waiting in a backlog nobody accepts.
            closeAllSockets()
        }
    }

    /// Reads the config file again and starts a generation from it beside the serving one.
    /// `done` gets the outcome once the new generation serves or has failed. Runs on the
    /// supervisor's loop, which carries no traffic: reading the file there is harmless.
    func reload(_ done: @escaping (ReloadResult) -> Void) {
        if let reason = machine.canReload {
            logger.warning("reload refused: \(reason)")
            return done(.failed(reason))
        }
        notifier?.reloading()
        let number = nextGeneration
        logger.notice("reloading \(options.configPath ?? "the embedded default config") as generation \(number)")
        let config: GatewayConfig
        do {
            config = try ConfigLoader.load(fileOrDefault: options.configPath)
        } catch {
            return reloadFailed("config error: \(error)", done)
        }
        let slots: [[ListeningSocket]]
        do throws(GatewayError) {
            slots = try bindListeners(of: config)
        } catch {
            return reloadFailed(error.message, done)
        }
        if config.admin != adminConfig {
            logger.notice("the admin section changed: it takes effect after a restart or `wharf upgrade`")
        }
        nextGeneration += 1
        generations[number] = (config, slots)
        generationStarted[number] = WallClock.now
        reloadWaiters[number, default: []].append(done)
        perform(machine.reload(GenerationSettings(number: number, config: config)))
    }

    private func reloadFailed(_ reason: String, _ done: (ReloadResult) -> Void) {
        logger.error("reload failed: \(reason)")
        keepServing(afterFailedReload: reason)
        done(.failed(reason))
    }

    /// A failed reload (before or after its workers started) changes nothing: say so, and tell
    /// systemd the reload is over.
    func keepServing(afterFailedReload reason: String) {
        metrics.reloaded(ok: false)
        logger.notice("the previous generation keeps serving")
        if let serving = machine.servingGeneration {
            notifier?.ready(status: "serving generation \(serving); the last reload failed: \(reason)")
        }
    }

    /// The Unix socket `wharf reload` and `wharf upgrade` talk to: one line in (`reload`,
    /// `upgrade` or `status`), one line out, then close. Bound here rather than by NIO, which
    /// would unlink the path when the channel closes, even after a binary upgrade gave the
    /// path to the new supervisor.
    func startControlServer(at path: String) {
        var existing = stat()
        if lstat(path, &existing) == 0, existing.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        guard let address = UnixSocketAddress(path) else {
            logger.error("cannot open the control socket \(path): path too long; `wharf reload` will not work")
            return
        }
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, address.withSockAddr({ bind(fd, $0, $1) }) == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            logger.error("cannot open the control socket \(path): \(ListeningSocket.errorText()); `wharf reload` will not work")
            close(fd)
            return
        }
        let bootstrap = ServerBootstrap(group: eventLoop).childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ControlLineHandler(
                    onLine: { line in self.answer(String(line), on: channel) }, onClose: {}))
            }
        }
        bootstrap.withBoundSocket(fd).whenComplete { result in
            switch result {
            case let .success(channel): self.controlServer = channel
            case let .failure(error): self.logger.error("cannot serve the control socket \(path): \(error)")
            }
        }
    }

    private func answer(_ command: String, on channel: any Channel) {
        func reply(_ text: String) {
            channel.writeAndFlush(ByteBuffer(string: text + "\n")).whenComplete { _ in channel.close(promise: nil) }
        }
        switch command {
        case "reload":
            reload { result in
                switch result {
                case let .serving(generation): reply("ok generation \(generation) serves")
                case let .failed(reason): reply("failed \(reason)")
                }
            }
        case "upgrade":
            startUpgrade { result in
                switch result {
                case let .success(pid): reply("ok wharf pid \(pid) serves; pid \(getpid()) drains and exits")
                case let .failure(failure): reply("failed \(failure)")
                }
            }
        case "status":
            let serving = machine.servingGeneration.map(String.init) ?? "none"
            let looping = machine.crashLooping(at: .now()).map { "\($0.generation):\($0.slot)" }.joined(separator: ",")
            reply("ok pid \(getpid()) generation \(serving) live \(machine.liveGenerations) workers \(machine.workerIDs)"
                + " crash_looping [\(looping)]")
        default:
            reply("failed unknown command '\(command)' (expected reload, upgrade or status)")
        }
    }
}
