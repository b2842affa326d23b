import Logging
import NIOConcurrencyHelpers

/// swift-log is bootstrapped once, before the config is read; the level is applied to
/// every logger made afterwards (the gateway's and each plugin instance's).
enum LogSetup {
    private static let level = NIOLockedValueBox(Logger.Level.info)

    static func bootstrap() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level.withLockedValue { $0 }
            return handler
        }
    }

    static func setLevel(_ newLevel: Logger.Level) {
        level.withLockedValue { $0 = newLevel }
    }
}
