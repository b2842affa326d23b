import CWharf
import NIOCore

/// What a plugin timer belongs to: a stream (`timer_start`) or an instance's place on its
/// loop (`loop_timer_start`). The owner completes its timers when it ends.
protocol TimerOwner: AnyObject {
    var pluginLoop: PluginLoop { get }
    /// Timers started on this owner and not yet completed.
    var timers: [PluginTimer] { get set }
}

/// A plugin's timer: one scheduled task on the owner's loop (NIO keeps them in its own
/// heap) and a handle. It completes exactly once: fired, cancelled, or its owner ended.
final class PluginTimer {
    private let callback: wharf_timer_cb
    private let userdata: UnsafeMutableRawPointer?
    private unowned let owner: any TimerOwner
    private var scheduled: Scheduled<Void>?
    private(set) var handle: OpaquePointer?

    init(owner: any TimerOwner, callback: wharf_timer_cb, userdata: UnsafeMutableRawPointer?) {
        self.owner = owner
        self.callback = callback
        self.userdata = userdata
    }

    /// timer_start and loop_timer_start: a timer on `owner`, started; returns its handle.
    static func start(on owner: any TimerOwner, delay milliseconds: UInt64, _ callback: wharf_timer_cb,
                      _ userdata: UnsafeMutableRawPointer?) -> OpaquePointer {
        PluginTimer(owner: owner, callback: callback, userdata: userdata).start(delay: .milliseconds(Int64(milliseconds)))
    }

    /// Registers the timer with its owner and its loop, and schedules it.
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
        guard scheduled != nil else { return WHARF_E_CLOSED }
        end(WHARF_E_CANCELLED)
        return WHARF_OK
    }

    /// Stops the timer now and completes it with `status` after the current code returns
    /// (its owner is being handed on, or ends inside a host call).
    func end(_ status: Int32) {
        scheduled?.cancel()
        scheduled = nil
        owner.timers.removeAll { $0 === self }
        owner.pluginLoop.loop.enqueue(.completion { [self] in complete(status) })
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

extension Optional where Wrapped == UnsafeMutablePointer<OpaquePointer?> {
    /// Stores a handle where the plugin asked for one (an out-parameter that may be NULL).
    /// A function, not `out?.pointee = make()`: optional chaining would skip `make()`
    /// itself when `out` is NULL.
    func store(_ handle: OpaquePointer) {
        self?.pointee = handle
    }
}
