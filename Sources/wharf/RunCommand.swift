import ArgumentParser
import Dispatch
import Logging
import WharfCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve the configured listeners (the default command).",
        discussion: """
            Without --config, serves the embedded default: reverse on 127.0.0.1:8888, line echo on \
            8889, separator echo on 8060. A supervisor binds the listeners and runs the plugins in \
            worker processes (the config's `processes`); SIGHUP reloads, SIGTERM drains.
            """
    )

    @Option(name: [.short, .long], help: "The YAML config file.")
    var config: String?

    @Option(name: .long, help: "After binding, write the listeners' real addresses here as JSON (for tests and scripts).")
    var readyFile: String?

    @Option(name: .long, help: "Override the config's log_level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String?

    @Flag(name: .long, help: """
        Serve in this one process, without a supervisor: for debugging and embedding. A crashing \
        plugin then takes every connection down, and there is no reload.
        """)
    var singleProcess = false

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let gatewayConfig = try ConfigSource.load(config)
        LogSetup.setLevel(logLevel.flatMap(Logger.Level.init(rawValue:)) ?? gatewayConfig.logLevel)
        LogSetup.bootstrap()
        let logger = Logger(label: "wharf")
        if singleProcess { return try SingleProcess.run(gatewayConfig, readyFile: readyFile, logger: logger) }

        let options = SupervisorOptions(configPath: config, logLevel: logLevel, readyFile: readyFile,
                                        arguments: Array(CommandLine.arguments.dropFirst()))
        let supervisor = Supervisor(options: options, logger: logger)
        let status = supervisor.run(gatewayConfig)
        if status != 0, let failure = supervisor.startupFailure {
            FileHandleOutput.standardError("wharf: \(failure)")
        }
        if status != 0 { throw ExitStatus(code: status) }
        logger.info("stopped")
    }
}

/// `--single-process`: today's gateway in this process, no supervisor. SIGTERM/SIGINT drain;
/// a second one closes what is left at once; SIGUSR1 reopens the access log.
enum SingleProcess {
    static func run(_ config: GatewayConfig, readyFile: String?, logger: Logger) throws {
        let gateway: Gateway
        let listeners: [BoundListener]
        do throws(GatewayError) {
            gateway = try Gateway(config: config, logger: logger)
            var sockets: [ListeningSocket] = []
            do throws(GatewayError) {
                for (index, listener) in config.listeners.enumerated() {
                    sockets += try ListeningSocket.bindGroup(listener, index: index, count: 1)
                }
            } catch {
                sockets.forEach { $0.close() }
                throw error
            }
            listeners = try gateway.start(sockets: sockets)
        } catch {
            FileHandleOutput.standardError("wharf: \(error.message)")
            throw error.kind == .listen ? ExitStatus.runtimeFailure : ExitStatus.configError
        }
        for listener in listeners {
            logger.info("listening \(listener.endpoint) → \(listener.config.plugin) (\(listener.pluginSummary))")
        }
        if let readyFile { ReadyFile.write(listeners, to: readyFile, logger: logger) }

        let stop = DispatchSemaphore(value: 0)
        let requests = AtomicCounter()
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if requests.next() == 1 { stop.signal() } else { gateway.closeAllNow() }
            }
            source.resume()
            return source
        }
        signal(SIGUSR1, SIG_IGN)
        let reopen = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        reopen.setEventHandler {
            if let failure = gateway.accessLog?.reopen() { logger.error("\(failure); the access log goes on to the file that was open") }
        }
        reopen.resume()
        for number in [SIGHUP, SIGUSR2] { signal(number, SIG_IGN) }
        stop.wait()
        reopen.cancel()
        logger.info("shutting down: no new connections; open ones get \(config.drainTimeoutMilliseconds) ms")
        gateway.shutdown()
        signals.forEach { $0.cancel() }
        logger.info("stopped")
    }
}

enum ConfigSource {
    /// The named file, or the embedded default. A bad config prints `file:line:col: ...`
    /// and exits 2.
    static func load(_ path: String?) throws -> GatewayConfig {
        do {
            return try ConfigLoader.load(fileOrDefault: path)
        } catch {
            FileHandleOutput.standardError("wharf: config error: \(error)")
            throw ExitStatus.configError
        }
    }
}
