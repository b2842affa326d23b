import NIOCore

/// Starts a loop's relay pump with the first relay that can use it, and stops it at the end.
/// Confined to its event loop, except `stop`.
final class PumpOwner: @unchecked Sendable {
    private let name: String
    private let eventLoop: any EventLoop
    /// Set before the pump starts (the gateway resolves `auto` once its plugins are loaded).
    var scheduling = PumpScheduling.normal
    private var pump: SocketPump?
    private var unavailable = false

    init(name: String, eventLoop: any EventLoop) {
        self.name = name
        self.eventLoop = eventLoop
    }

    /// The running pump, or nil if none can be started (relays then use the channels).
    func running() -> SocketPump? {
        if let pump { return pump }
        guard !unavailable else { return nil }
        guard let made = SocketPump(name: name, loop: eventLoop, scheduling: scheduling), made.start() else {
            unavailable = true
            PumpLog.logger.warning("relay pump unavailable; relays run through the event loop")
            return nil
        }
        pump = made
        return made
    }

    /// Runs `body` with the pump's wake-ups held, so the relays it opens or closes wake the
    /// pump once, at the end. On the loop.
    func batchingCommands(_ body: () -> Void) {
        guard let pump else { return body() }
        pump.holdingWakeUps(body)
    }

    /// Stops the pump thread (after every relay has ended). Called off the loop.
    func stop() {
        let pump = try? eventLoop.submit { () -> SocketPump? in
            defer { self.pump = nil }
            return self.pump
        }.wait()
        pump?.stop()
    }
}
