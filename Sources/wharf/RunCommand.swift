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
        discussion: "Without --config, serves the embedded default: reverse on 127.0.0.1:8888, "
            + "line echo on 8889, separator echo on 8060."
    )

    @Option(name: [.short, .long], help: "The YAML config file.")
    var config: String?

    @Option(name: .long, help: "After binding, write the listeners' real addresses here as JSON (for tests and scripts).")
    var readyFile: String?

    @Option(name: .long, help: "Override the config's log_level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String?

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

        let gateway: Gateway
        let listeners: [BoundListener]
        do {
            gateway = try Gateway(config: gatewayConfig, logger: logger)
            listeners = try gateway.start()
        } catch let error as GatewayError {
            FileHandleOutput.standardError("wharf: \(error.message)")
            throw error.kind == .listen ? ExitStatus.runtimeFailure : ExitStatus.configError
        }
        for listener in listeners {
            logger.info("listening \(Self.endpoint(listener.address, listener.port)) → \(listener.config.plugin) (\(listener.pluginSummary))")
        }
        if let readyFile { try ReadyFile.write(listeners, to: readyFile) }

        let stop = DispatchSemaphore(value: 0)
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        stop.wait()
        logger.info("shutting down: no new connections; open ones get \(gatewayConfig.shutdownGraceMilliseconds) ms")
        gateway.shutdown()
        signals.forEach { $0.cancel() }
        logger.info("stopped")
    }

    static func endpoint(_ address: String, _ port: Int) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

enum ConfigSource {
    /// The named file, or the embedded default. A bad config prints `file:line:col: ...`
    /// and exits 2.
    static func load(_ path: String?) throws -> GatewayConfig {
        do {
            guard let path else { return try ConfigLoader.parse(DefaultConfig.text, file: DefaultConfig.fileName) }
            return try ConfigLoader.load(file: path)
        } catch {
            FileHandleOutput.standardError("wharf: config error: \(error)")
            throw ExitStatus.configError
        }
    }
}

enum ReadyFile {
    static func write(_ listeners: [BoundListener], to path: String) throws {
        let entries = listeners.map { listener in
            "{\"name\":\"\(listener.config.displayName)\",\"plugin\":\"\(listener.config.plugin)\","
                + "\"address\":\"\(listener.address)\",\"port\":\(listener.port)}"
        }
        let text = "[" + entries.joined(separator: ",") + "]\n"
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "w") else {
            FileHandleOutput.standardError("wharf: cannot write ready file \(path)")
            throw ExitStatus.runtimeFailure
        }
        fputs(text, file)
        fclose(file)
        rename(temporary, path)
    }
}
