import CWharf

/// One key of a Swift plugin's config, declared for the host to check (wharf_config_key).
public struct ConfigKey: Sendable {
    public enum KeyType: UInt32, Sendable {
        case integer = 1, boolean, string, bytes, duration, size, hostPort, list, map, json
    }

    public let name: String
    public let type: KeyType
    public let required: Bool
    public let min: Int64
    public let max: Int64
    public let defaultValue: String?
    public let summary: String

    /// `default` is YAML text ("20", "10s", "\"\\r\\n\""); min == max == 0: no bound.
    public init(name: String, type: KeyType, required: Bool = false, min: Int64 = 0, max: Int64 = 0,
                default defaultValue: String? = nil, summary: String = "") {
        self.name = name
        self.type = type
        self.required = required
        self.min = min
        self.max = max
        self.defaultValue = defaultValue
        self.summary = summary
    }

    /// The C schema, built once and kept for the life of the process.
    static func schema(_ keys: [ConfigKey]) -> UnsafePointer<wharf_config_schema> {
        let table = UnsafeMutablePointer<wharf_config_key>.allocate(capacity: Swift.max(1, keys.count))
        for (index, key) in keys.enumerated() {
            var entry = wharf_config_key()
            entry.name = CText.keep(key.name)
            entry.type = key.type.rawValue
            entry.flags = key.required ? WHARF_CONFIG_REQUIRED : 0
            entry.min = key.min
            entry.max = key.max
            entry.default_value = key.defaultValue.map(CText.keep)
            entry.description = CText.keep(key.summary)
            (table + index).initialize(to: entry)
        }
        var schema = wharf_config_schema()
        schema.struct_size = UInt32(MemoryLayout<wharf_config_schema>.size)
        schema.key_size = UInt32(MemoryLayout<wharf_config_key>.size)
        schema.key_count = UInt32(keys.count)
        schema.keys = UnsafePointer(table)
        let pointer = UnsafeMutablePointer<wharf_config_schema>.allocate(capacity: 1)
        pointer.initialize(to: schema)
        return UnsafePointer(pointer)
    }
}

/// The instance's checked config, in `init` (the host has applied the schema and defaults).
public struct PluginConfig {
    let host: UnsafePointer<wharf_host_api>
    let instance: OpaquePointer?

    /// An integer, duration (ms), size (bytes) or boolean (1/0) key.
    public func integer(_ key: String) throws -> Int {
        var value: Int64 = 0
        try check(host.pointee.config_integer(instance, key, &value))
        return Int(value)
    }

    /// A string or bytes key, as bytes.
    public func bytes(_ key: String) throws -> [UInt8] {
        var data: UnsafePointer<CChar>?
        var length = 0
        try check(host.pointee.config_string(instance, key, &data, &length))
        return data.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
    }

    public func string(_ key: String) throws -> String { String(decoding: try bytes(key), as: UTF8.self) }

    private func check(_ status: Int32) throws {
        if status != WHARF_OK { throw WharfError(status, host: host) }
    }
}
