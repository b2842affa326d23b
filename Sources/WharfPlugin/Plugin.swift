import CWharf

/// A Wharf plugin written in Swift, with async/await handlers. One instance is made per event
/// loop (as for C plugins); `handle` runs as a task on that loop for each connection.
///
///     final class Reverse: SwiftPlugin {
///         static let name = "swift_reverse", version = "1.0.0", summary = "..."
///         static let configKeys = [ConfigKey(name: "chunk_size", type: .integer, min: 1, max: 4096, default: "20")]
///         let chunkSize: Int
///         init(config: PluginConfig) throws { chunkSize = try config.integer("chunk_size") }
///         func handle(_ stream: Stream) async throws {
///             for try await chunk in stream.chunks(upTo: chunkSize) { ... }
///         }
///     }
///
///     @_cdecl("wharf_plugin_v1")
///     public func entry() -> UnsafeRawPointer { PluginExport.descriptor(for: Reverse.self) }
public protocol SwiftPlugin: AnyObject {
    static var name: String { get }
    static var version: String { get }
    static var summary: String { get }
    /// The config keys the host checks before `init` (see wharf.h, "Host-declared config").
    static var configKeys: [ConfigKey] { get }
    /// Once per event loop, on the host's control thread; throw to refuse the config.
    init(config: PluginConfig) throws
    /// One connection. When it returns (or throws) the stream is closed gracefully.
    func handle(_ stream: Stream) async throws
}

/// A refusal from `init`, printed by the host at the instance's `config:` line.
public struct PluginRefusal: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The C side of a Swift plugin: its descriptor and entry points. A plugin library holds one
/// plugin type (its own copy of this module).
public enum PluginExport {
    nonisolated(unsafe) private static var factory: ((PluginConfig) throws -> any SwiftPlugin)?
    nonisolated(unsafe) private static var made: UnsafePointer<wharf_plugin_descriptor>?

    /// The static descriptor for `Plugin` (built once; call it from the `wharf_plugin_v1` entry).
    public static func descriptor<Plugin: SwiftPlugin>(for plugin: Plugin.Type) -> UnsafeRawPointer {
        if let made { return UnsafeRawPointer(made) }
        factory = { try Plugin(config: $0) }
        var descriptor = wharf_plugin_descriptor()
        descriptor.struct_size = UInt32(MemoryLayout<wharf_plugin_descriptor>.size)
        descriptor.abi_major = UInt16(WHARF_ABI_MAJOR)
        descriptor.abi_minor = UInt16(WHARF_ABI_MINOR)
        descriptor.min_host_abi_minor = 5 // loop_post and the config accessors
        descriptor.name = CText.keep(Plugin.name)
        descriptor.version = CText.keep(Plugin.version)
        descriptor.description = CText.keep(Plugin.summary)
        descriptor.`init` = initialize
        descriptor.handle_stream = handleStream
        descriptor.shutdown = shutdown
        descriptor.config_schema = ConfigKey.schema(Plugin.configKeys)
        let pointer = UnsafeMutablePointer<wharf_plugin_descriptor>.allocate(capacity: 1)
        pointer.initialize(to: descriptor)
        made = UnsafePointer(pointer)
        return UnsafeRawPointer(pointer)
    }

    /// What each loop's instance holds.
    final class Instance {
        let plugin: any SwiftPlugin
        let host: UnsafePointer<wharf_host_api>
        let executor: LoopExecutor
        init(plugin: any SwiftPlugin, host: UnsafePointer<wharf_host_api>, executor: LoopExecutor) {
            self.plugin = plugin
            self.host = host
            self.executor = executor
        }
    }

    private static let initialize: @convention(c) (UnsafePointer<wharf_host_api>?, UnsafePointer<wharf_init_args>?,
                                                   UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                                   UnsafeMutablePointer<CChar>?, Int) -> Int32 = { host, args, out, error, length in
        guard let host, let args, let out, let factory else { return WHARF_E_INVALID }
        let config = PluginConfig(host: host, instance: args.pointee.instance)
        do {
            let plugin = try factory(config)
            let instance = Instance(plugin: plugin, host: host, executor: LoopExecutor(host: host, loop: args.pointee.loop))
            out.pointee = Unmanaged.passRetained(instance).toOpaque()
            return WHARF_OK
        } catch let refusal {
            if let error, length > 0 {
                let text = Array("\(refusal)".utf8.prefix(length - 1))
                text.withUnsafeBytes { UnsafeMutableRawPointer(error).copyMemory(from: $0.baseAddress!, byteCount: text.count) }
                error[text.count] = 0
            }
            return (refusal as? WharfError)?.code ?? WHARF_E_INVALID
        }
    }

    private static let handleStream: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?) -> Int32 = { state, handle in
        guard let state, let handle else { return WHARF_E_INVALID }
        let instance = Unmanaged<Instance>.fromOpaque(state).takeUnretainedValue()
        return instance.executor.entry {
            let stream = Stream(host: instance.host, handle: handle, executor: instance.executor)
            let work = UncheckedTransfer(Connection(plugin: instance.plugin, stream: stream))
            Task(executorPreference: instance.executor) {
                await work.value.serve()
            }
            return WHARF_OK
        }
    }

    private static let shutdown: @convention(c) (UnsafeMutableRawPointer?) -> Void = { state in
        guard let state else { return }
        Unmanaged<Instance>.fromOpaque(state).release()
    }
}

/// One connection's handler task: the plugin's `handle`, then a graceful close.
struct Connection {
    let plugin: any SwiftPlugin
    let stream: Stream

    func serve() async {
        do {
            try await plugin.handle(stream)
        } catch {}
        stream.close()
    }
}

/// Carries loop-confined values into a task that runs on the same loop.
struct UncheckedTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// C strings that live as long as the process (descriptor and schema text).
enum CText {
    static func keep(_ text: String) -> UnsafePointer<CChar> {
        let bytes = Array(text.utf8CString)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        pointer.initialize(from: bytes, count: bytes.count)
        return UnsafePointer(pointer)
    }
}
