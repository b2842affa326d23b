import CWharf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a plugin was refused. `description` names the file and the reason, with both
/// versions where versions are the reason. A refusal by the plugin's own init is about its
/// config, so it is printed like every other config error, at the `config:` it refused:
/// `wharf.yaml:4:13: plugins.cache.config: <the plugin's message> (init of libx.so)`.
public struct PluginLoadError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    /// `plugins.NAME.config` when the plugin's init refused its config.
    public var configKey: String?
    public var location: SourceLocation?

    public init(path: String, reason: String, configKey: String? = nil, location: SourceLocation? = nil) {
        self.path = path
        self.reason = reason
        self.configKey = configKey
        self.location = location
    }

    /// The host refused the config against the plugin's schema (not the plugin's init).
    public var bySchema = false

    public var description: String {
        guard let configKey else { return "plugin \(path): \(reason)" }
        let prefix = location.map { "\($0): " } ?? ""
        return "\(prefix)\(configKey): \(reason)" + (bySchema ? "" : " (refused by the init of \(path))")
    }

    /// A config that does not check against the plugin's schema.
    init(path: String, schemaError error: ConfigError) {
        self.init(path: path, reason: error.message, configKey: error.keyPath, location: error.location)
        bySchema = true
    }
}

/// A loaded plugin library and its checked descriptor.
///
/// Libraries are never unloaded: a connection or a plugin thread may still run its code,
/// and re-opening the same path would return the old mapping anyway. Reload (a later
/// generation) loads a new copy of the file instead.
public final class PluginLibrary: @unchecked Sendable {
    public static let hostMajor = UInt16(WHARF_ABI_MAJOR)
    public static let hostMinor = UInt16(WHARF_ABI_MINOR)
    /// The v1 descriptor ends after `shutdown`; anything shorter cannot be a v1 plugin.
    static let minimumDescriptorSize = MemoryLayout<wharf_plugin_descriptor>.offset(of: \.shutdown)! + 8

    public let path: String
    let descriptor: UnsafePointer<wharf_plugin_descriptor>
    /// The keys its config may have (ABI 1.5), if it declares them.
    public let configSchema: PluginConfigSchema?
    // Accessed only through `descriptor`; kept so the mapping is visibly owned.
    private let dlHandle: UnsafeMutableRawPointer

    public var name: String { Self.string(descriptor.pointee.name) ?? "" }
    public var version: String { Self.string(descriptor.pointee.version) ?? "" }
    public var summary: String { Self.string(descriptor.pointee.description) ?? "" }
    public var abiVersion: String { "\(descriptor.pointee.abi_major).\(descriptor.pointee.abi_minor)" }
    public var minimumHostMinor: UInt16 { descriptor.pointee.min_host_abi_minor }
    /// The minor version the plugin was built against: which status codes it knows.
    var abiMinor: UInt16 { descriptor.pointee.abi_minor }
    /// The descriptor's WHARF_PLUGIN_* hints [1.7]; none before.
    let flags: UInt32
    /// See WHARF_PLUGIN_RELAYS_AT_ONCE.
    public var relaysAtOnce: Bool { flags & UInt32(WHARF_PLUGIN_RELAYS_AT_ONCE) != 0 }
    public var hooks: [String] {
        var present = ["init", "handle_stream"]
        if descriptor.pointee.shutdown != nil { present.append("shutdown") }
        return present
    }

    private init(path: String, handle: UnsafeMutableRawPointer, descriptor: UnsafePointer<wharf_plugin_descriptor>,
                 configSchema: PluginConfigSchema?) {
        self.path = path
        self.dlHandle = handle
        self.descriptor = descriptor
        self.configSchema = configSchema
        let flagsEnd = MemoryLayout<wharf_plugin_descriptor>.offset(of: \.flags)! + MemoryLayout<UInt32>.size
        flags = Int(descriptor.pointee.struct_size) >= flagsEnd ? descriptor.pointee.flags : 0
    }

    public static func load(path: String) throws(PluginLoadError) -> PluginLibrary {
        func refuse(_ reason: String) -> PluginLoadError { PluginLoadError(path: path, reason: reason) }

        var info = stat()
        guard stat(path, &info) == 0 else { throw refuse("not found") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw refuse("not a regular file") }

        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            let notELF = ["invalid ELF header", "file too short", "not an ELF", "wrong ELF class"]
                .contains(where: message.contains)
            throw refuse(notELF ? "not a shared object (\(message))" : "cannot be loaded: \(message)")
        }
        guard let symbol = dlsym(handle, WHARF_PLUGIN_ENTRY_SYMBOL) else {
            let otherMajor = (2...9).first { dlsym(handle, "wharf_plugin_v\($0)") != nil }
            dlclose(handle)
            if let otherMajor {
                throw refuse("built for plugin ABI major \(otherMajor) (exports wharf_plugin_v\(otherMajor)); "
                    + "this host speaks ABI \(hostMajor).\(hostMinor) (wharf_plugin_v1)")
            }
            throw refuse("no entry symbol '\(WHARF_PLUGIN_ENTRY_SYMBOL)': not a Wharf plugin, or the entry "
                + "was not exported (use WHARF_PLUGIN_DEFINE)")
        }
        let entry = unsafeBitCast(symbol, to: wharf_plugin_entry_fn.self)
        guard let descriptor = entry() else {
            throw refuse("entry '\(WHARF_PLUGIN_ENTRY_SYMBOL)' returned NULL")
        }
        let found = descriptor.pointee
        guard found.abi_major == hostMajor else {
            throw refuse("built against ABI \(found.abi_major).\(found.abi_minor); this host speaks ABI "
                + "\(hostMajor).\(hostMinor) (major versions must match)")
        }
        guard Int(found.struct_size) >= minimumDescriptorSize else {
            throw refuse("descriptor is \(found.struct_size) bytes, smaller than ABI 1.0's "
                + "\(minimumDescriptorSize): corrupt or not built with wharf.h")
        }
        guard found.min_host_abi_minor <= hostMinor else {
            throw refuse("needs host ABI \(hostMajor).\(found.min_host_abi_minor) or newer (built against "
                + "\(found.abi_major).\(found.abi_minor)); this host speaks ABI \(hostMajor).\(hostMinor)")
        }
        guard found.`init` != nil, found.handle_stream != nil else {
            throw refuse("descriptor lacks a required hook (init and handle_stream must be set)")
        }
        var schema: PluginConfigSchema?
        let schemaEnd = MemoryLayout<wharf_plugin_descriptor>.offset(of: \.config_schema)! + MemoryLayout<UnsafeRawPointer>.size
        if Int(found.struct_size) >= schemaEnd, let declared = found.config_schema {
            schema = try PluginConfigSchema(declared, library: path)
        }
        return PluginLibrary(path: path, handle: handle, descriptor: descriptor, configSchema: schema)
    }

    /// Calls the plugin's `init`; returns its instance state or its own refusal message.
    /// `seat`: the `wharf_loop *` for args->loop; nil validates the config only.
    func initialize(identity: PluginIdentity, configJSON: String, loopIndex: Int, loopCount: Int,
                    seat: OpaquePointer?) throws(PluginLoadError) -> UnsafeMutableRawPointer? {
        var state: UnsafeMutableRawPointer?
        var message = [CChar](repeating: 0, count: 1024)
        let status: Int32 = identity.name.withCString { namePointer in
            configJSON.withCString { jsonPointer in
                var args = wharf_init_args()
                args.struct_size = UInt32(MemoryLayout<wharf_init_args>.size)
                args.flags = seat == nil ? WHARF_INIT_VALIDATE : 0
                args.instance = identity.opaque
                args.instance_name = namePointer
                args.instance_name_len = identity.name.utf8.count
                args.config_json = jsonPointer
                args.config_json_len = configJSON.utf8.count
                args.loop_index = UInt32(loopIndex)
                args.loop_count = UInt32(loopCount)
                args.loop = seat
                identity.initializing = true
                defer { identity.initializing = false }
                return message.withUnsafeMutableBufferPointer { buffer in
                    descriptor.pointee.`init`(HostAPI.table, &args, &state, buffer.baseAddress, buffer.count - 1)
                }
            }
        }
        guard status == WHARF_OK else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let detail = text.isEmpty ? String(describing: StatusCode.describe(status)) : text
            throw PluginLoadError(path: path, reason: detail, configKey: "plugins.\(identity.name).config")
        }
        return state
    }

    func handleStream(state: UnsafeMutableRawPointer?, stream: OpaquePointer?) -> Int32 {
        descriptor.pointee.handle_stream(state, stream)
    }

    func shutdown(state: UnsafeMutableRawPointer?) {
        descriptor.pointee.shutdown?(state)
    }

    private static func string(_ pointer: UnsafePointer<CChar>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
