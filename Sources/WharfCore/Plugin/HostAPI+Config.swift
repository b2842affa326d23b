import CWharf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An instance's checked config values, and the C strings handed out for them, which live
/// as long as the instance (the accessors promise them until shutdown returns).
final class PluginConfigStore {
    let values: [String: PluginConfigValue]
    private var handedOut: [UnsafeMutablePointer<CChar>] = []

    init(values: [String: PluginConfigValue]) {
        self.values = values
    }

    deinit { handedOut.forEach { free($0) } }

    /// A NUL-terminated copy of `bytes` (which may hold NULs), kept until the store goes.
    func cString(_ bytes: [UInt8]) -> UnsafePointer<CChar> {
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: bytes.count) }
        }
        copy[bytes.count] = 0
        handedOut.append(copy)
        return UnsafePointer(copy)
    }
}

/// The config_* host functions (ABI 1.5): typed values of a plugin's checked config, during
/// its init only.
extension HostAPI {
    static func addConfigAccess(to api: inout wharf_host_api) {
        api.config_integer = { instance, key, out in
            HostAPI.withConfigValue(instance, key) { _, value in
                guard case let .integer(number) = value, let out else { return WHARF_E_INVALID }
                out.pointee = number
                return WHARF_OK
            }
        }
        api.config_string = { instance, key, data, length in
            HostAPI.withConfigValue(instance, key) { store, value in
                let bytes: [UInt8]
                switch value {
                case let .text(text): bytes = text
                case let .json(text): bytes = Array(text.utf8)
                case let .hostPort(host, port): bytes = Array(Endpoint.text(host, port).utf8)
                default: return WHARF_E_INVALID
                }
                data?.pointee = store.cString(bytes)
                length?.pointee = bytes.count
                return WHARF_OK
            }
        }
        api.config_host_port = { instance, key, host, port in
            HostAPI.withConfigValue(instance, key) { store, value in
                guard case let .hostPort(name, number) = value else { return WHARF_E_INVALID }
                host?.pointee = store.cString(Array(name.utf8))
                port?.pointee = number
                return WHARF_OK
            }
        }
        api.config_list_count = { instance, key, count in
            HostAPI.withConfigValue(instance, key) { _, value in
                guard case let .list(items) = value else { return WHARF_E_INVALID }
                count?.pointee = items.count
                return WHARF_OK
            }
        }
        api.config_map_count = { instance, key, count in
            HostAPI.withConfigValue(instance, key) { _, value in
                guard case let .map(entries) = value else { return WHARF_E_INVALID }
                count?.pointee = entries.count
                return WHARF_OK
            }
        }
        api.config_list_item = { instance, key, index, data, length in
            HostAPI.withConfigValue(instance, key) { store, value in
                guard case let .list(items) = value, index < items.count else { return WHARF_E_INVALID }
                data?.pointee = store.cString(items[index])
                length?.pointee = items[index].count
                return WHARF_OK
            }
        }
        api.config_map_entry = { instance, key, index, name, valueOut, length in
            HostAPI.withConfigValue(instance, key) { store, value in
                guard case let .map(entries) = value, index < entries.count else { return WHARF_E_INVALID }
                name?.pointee = store.cString(Array(entries[index].key.utf8))
                valueOut?.pointee = store.cString(entries[index].value)
                length?.pointee = entries[index].value.count
                return WHARF_OK
            }
        }
    }

    /// Finds `key`'s value for the instance whose init is running.
    static func withConfigValue(_ instance: OpaquePointer?, _ key: UnsafePointer<CChar>?,
                                _ body: (PluginConfigStore, PluginConfigValue) -> Int32) -> Int32 {
        guard let instance, let key else { return WHARF_E_INVALID }
        let identity = PluginLog.identity(instance)
        guard identity.initializing else { return WHARF_E_WRONG_THREAD }
        guard let store = identity.config else { return WHARF_E_INVALID } // no schema
        let name = String(cString: key)
        guard let value = store.values[name] else {
            return identity.configKeys.contains(name) ? WHARF_E_ABSENT : WHARF_E_INVALID
        }
        return body(store, value)
    }
}
