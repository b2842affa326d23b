import CWharf

/// A thread-safe way back onto a stream's loop (`waker_post`).
final class Waker: Sendable {
    private let pluginLoop: PluginLoop
    private let handleBits: UInt64

    init(pluginLoop: PluginLoop, handle: OpaquePointer?) {
        self.pluginLoop = pluginLoop
        self.handleBits = UInt64(UInt(bitPattern: handle))
    }

    func post(_ function: wharf_post_fn, userdata: UnsafeMutableRawPointer?) {
        if pluginLoop.isStopped {
            function(userdata, WHARF_E_SHUTDOWN)
            return
        }
        let work = PostedWork(function: function, userdata: userdata, pluginLoop: pluginLoop, handleBits: handleBits)
        pluginLoop.loop.eventLoop.execute { work.run() }
    }

    /// Crosses threads by value; the plugin owns what `userdata` points to.
    private struct PostedWork: @unchecked Sendable {
        let function: wharf_post_fn
        let userdata: UnsafeMutableRawPointer?
        let pluginLoop: PluginLoop
        let handleBits: UInt64

        /// On the loop: through the dispatcher, with whether the stream is still alive.
        func run() {
            pluginLoop.loop.enqueue(.completion {
                let alive = OpaquePointer(bitPattern: UInt(handleBits)).flatMap(pluginLoop.stream(for:)) != nil
                function(userdata, alive ? WHARF_OK : WHARF_E_CLOSED)
            })
        }
    }
}
