/// One configured plugin instance on one event loop: the plugin's state pointer, used only
/// by that loop's thread (see "Instances and threads" in wharf.h).
public final class PluginInstance: @unchecked Sendable {
    public let name: String
    public let library: PluginLibrary
    public let loopIndex: Int
    let identity: PluginIdentity
    private let state: UnsafeMutableRawPointer?
    private var isShutDown = false

    init(name: String, library: PluginLibrary, configJSON: String, loopIndex: Int, loopCount: Int,
         validateOnly: Bool = false, metrics: PluginMetricsRegistry? = nil) throws(PluginLoadError) {
        self.name = name
        self.library = library
        self.loopIndex = loopIndex
        self.identity = PluginIdentity(name: name, loopIndex: loopIndex, metrics: validateOnly ? nil : metrics)
        self.state = try library.initialize(identity: identity, configJSON: configJSON, loopIndex: loopIndex,
                                            loopCount: loopCount, validateOnly: validateOnly)
    }

    /// Called on the instance's loop for every accepted connection.
    func handleStream(_ handle: OpaquePointer?) -> Int32 {
        library.handleStream(state: state, stream: handle)
    }

    /// Runs the plugin's shutdown hook once; call only when no stream of this instance is live.
    func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        library.shutdown(state: state)
    }
}
