import Logging
import NIOConcurrencyHelpers
import WharfCore

/// swift-log is bootstrapped once, before the config is read; the level is applied to
/// every logger made afterwards (the gateway's and each plugin instance's).
enum LogSetup {
    private static let level = NIOLockedValueBox(Logger.Level.info)

    static func bootstrap() {
        // Through a queue and a writer thread: a slow standard error never blocks an event loop.
        LoggingSystem.bootstrap { label in
            QueuedLogHandler(label: label, level: level.withLockedValue { $0 })
        }
    }

    static func setLevel(_ newLevel: Logger.Level) {
        level.withLockedValue { $0 = newLevel }
    }
}
