import CWharf
import NIOCore

/// A plugin's `timer_start`: one scheduled task on the stream's loop (NIO keeps them in its
/// own heap) and a handle. It completes exactly once: fired, cancelled, or its stream closed.
final class PluginTimer {
    private let callback: wharf_timer_cb
    private let userdata: UnsafeMutableRawPointer?
    private unowned let owner: PluginStream
    private var scheduled: Scheduled<Void>?
    private(set) var handle: OpaquePointer?

    init(owner: PluginStream, callback: wharf_timer_cb, userdata: UnsafeMutableRawPointer?) {
        self.owner = owner
        self.callback = callback
        self.userdata = userdata
    }

    /// Registers the timer with its stream and its loop, and schedules it.
    func start(delay: TimeAmount) -> OpaquePointer {
        let pluginLoop = owner.pluginLoop
        let handle = pluginLoop.register(self)
        self.handle = handle
        owner.timers.append(self)
        scheduled = pluginLoop.loop.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            scheduled = nil
            pluginLoop.loop.dispatch { complete(WHARF_OK) }
        }
        return handle
    }

    /// timer_cancel: the callback runs with WHARF_E_CANCELLED after the current code returns.
    func cancel() -> Int32 {
        guard let scheduled else { return WHARF_E_CLOSED }
        scheduled.cancel()
        self.scheduled = nil
        owner.pluginLoop.loop.enqueue(.completion { [self] in complete(WHARF_E_CANCELLED) })
        return WHARF_OK
    }

    /// Runs the callback once, then the handle is dead.
    func complete(_ status: Int32) {
        guard let handle else { return }
        scheduled?.cancel()
        scheduled = nil
        self.handle = nil
        owner.timers.removeAll { $0 === self }
        callback(userdata, handle, status)
        owner.pluginLoop.unregister(timer: handle)
    }
}
