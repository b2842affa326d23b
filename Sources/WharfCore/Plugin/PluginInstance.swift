import NIOCore

/// One configured plugin instance on one event loop: the plugin's state pointer, used only
/// by that loop's thread (see "Instances and threads" in wharf.h), and its place on the loop
/// for loop-level work.
public final class PluginInstance: @unchecked Sendable {
    public let name: String
    public let library: PluginLibrary
    public let loopIndex: Int
    let identity: PluginIdentity
    /// The `wharf_loop *` init received; nil in validate mode (no loop runs).
    let seat: LoopSeat?
    private let state: UnsafeMutableRawPointer?
    private var isShutDown = false

    /// `pluginLoop`: the loop the instance serves (nil to validate the config only).
    /// `config`: the values checked against the plugin's schema, for the config_* accessors.
    init(name: String, library: PluginLibrary, configJSON: String, config: [String: PluginConfigValue]? = nil,
         pluginLoop: PluginLoop?, loopCount: Int, metrics: PluginMetricsRegistry? = nil) throws(PluginLoadError) {
        let loopIndex = pluginLoop?.loop.loopIndex ?? 0
        self.name = name
        self.library = library
        self.loopIndex = loopIndex
        self.identity = PluginIdentity(name: name, loopIndex: loopIndex, metrics: pluginLoop == nil ? nil : metrics)
        identity.config = config.map { PluginConfigStore(values: $0) }
        identity.configKeys = Set(library.configSchema?.keys.map(\.name) ?? [])
        let seat = pluginLoop.map { LoopSeat.make(on: $0, abiMinor: library.abiMinor) }
        self.seat = seat
        do {
            self.state = try library.initialize(identity: identity, configJSON: configJSON, loopIndex: loopIndex,
                                                loopCount: loopCount, seat: seat?.handle)
        } catch {
            seat?.abandon()
            throw error
        }
        seat?.initialized()
    }

    /// Called on the instance's loop for every accepted connection.
    func handleStream(_ handle: OpaquePointer?) -> Int32 {
        library.handleStream(state: state, stream: handle)
    }

    /// A generation that failed to build: its instances never served. Ends their
    /// loop-level work (waiting for it here, off the loop), then shuts them down.
    func endAndShutdown() {
        if let seat {
            let eventLoop = seat.pluginLoop.loop.eventLoop
            let ended = eventLoop.makePromise(of: Void.self)
            eventLoop.execute { seat.end { ended.succeed() } }
            _ = try? ended.futureResult.wait()
        }
        shutdown()
    }

    /// Runs the plugin's shutdown hook once; call only when no stream of this instance is
    /// live and its loop-level work has ended (`LoopSeat.end`).
    func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        library.shutdown(state: state)
    }
}
