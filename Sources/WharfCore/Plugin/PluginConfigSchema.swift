import CWharf
import Yams

/// A plugin's declared config keys (`wharf_config_schema`, ABI 1.5), read once when its
/// library loads. The host checks each instance's `config:` against it before init
/// (`PluginConfigSchema.check`, in PluginConfigCheck.swift).
public struct PluginConfigSchema: Sendable {
    public enum KeyType: UInt32, Sendable {
        case integer = 1, boolean, string, bytes, duration, size, hostPort, list, map, json

        var name: String {
            switch self {
            case .integer: "integer"
            case .boolean: "boolean"
            case .string: "string"
            case .bytes: "bytes"
            case .duration: "duration"
            case .size: "size"
            case .hostPort: "host:port"
            case .list: "list"
            case .map: "map"
            case .json: "any value (checked by the plugin)"
            }
        }
    }

    public struct Key: Sendable {
        public let name: String
        public let type: KeyType
        public let required: Bool
        /// Nil when the schema leaves it unbounded (min == max == 0).
        public let bounds: ClosedRange<Int64>?
        public let defaultText: String?
        public let summary: String
        /// The default, parsed once at load (a default that does not check is the plugin's bug).
        let defaultValue: PluginConfigValue?
    }

    public let keys: [Key]

    /// Reads the C schema; a malformed one is refused with the reason (a plugin bug).
    init(_ schema: UnsafePointer<wharf_config_schema>, library: String) throws(PluginLoadError) {
        func refuse(_ reason: String) -> PluginLoadError { PluginLoadError(path: library, reason: "config_schema: \(reason)") }
        let header = schema.pointee
        let stride = Int(header.key_size)
        guard Int(header.struct_size) >= MemoryLayout<wharf_config_schema>.size,
              stride >= MemoryLayout<wharf_config_key>.size, header.key_count <= 256 else {
            throw refuse("struct_size, key_size or key_count is wrong (built with wharf.h?)")
        }
        guard header.key_count == 0 || header.keys != nil else { throw refuse("keys is NULL") }
        var keys: [Key] = []
        for index in 0..<Int(header.key_count) {
            let raw = UnsafeRawPointer(header.keys!).advanced(by: index * stride).assumingMemoryBound(to: wharf_config_key.self).pointee
            guard let namePointer = raw.name else { throw refuse("key \(index) has no name") }
            let name = String(cString: namePointer)
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 == 95 || (97...122).contains($0) || (48...57).contains($0) }),
                  !keys.contains(where: { $0.name == name }) else {
                throw refuse("key '\(name)': names are [a-z0-9_]+ and unique")
            }
            guard let type = KeyType(rawValue: raw.type) else { throw refuse("key '\(name)': unknown type \(raw.type)") }
            let bounds: ClosedRange<Int64>? = raw.min == 0 && raw.max == 0 ? nil : raw.min <= raw.max ? raw.min...raw.max : nil
            if bounds == nil, raw.min != 0 || raw.max != 0 { throw refuse("key '\(name)': min is over max") }
            let required = raw.flags & WHARF_CONFIG_REQUIRED != 0
            let defaultText = raw.default_value.map { String(cString: $0) }
            if required, defaultText != nil { throw refuse("key '\(name)': a required key has no default") }
            var key = Key(name: name, type: type, required: required, bounds: bounds, defaultText: defaultText,
                          summary: raw.description.map { String(cString: $0) } ?? "", defaultValue: nil)
            if let defaultText {
                do throws(ConfigError) {
                    key = Key(name: key.name, type: type, required: false, bounds: bounds, defaultText: defaultText,
                              summary: key.summary, defaultValue: try Self.parseDefault(defaultText, for: key))
                } catch {
                    throw refuse("key '\(name)': default \(defaultText): \(error.message)")
                }
            }
            keys.append(key)
        }
        self.keys = keys
    }

    private static func parseDefault(_ text: String, for key: Key) throws(ConfigError) -> PluginConfigValue {
        let reader = YAMLReader(file: "default")
        guard let node = try reader.compose(text) else {
            throw ConfigError(SourceLocation(file: "default", line: 1, column: 1), "", "empty")
        }
        return try key.value(of: try ConfigTree.make(node, reader: reader, path: key.name), path: key.name)
    }

    /// The schema as `wharf plugin info` prints it: one line per key.
    public var documentation: [String] {
        let width = keys.map(\.name.count).max() ?? 0
        return keys.map { key in
            var what = key.type.name + (key.bounds.map { " \(key.describe($0))" } ?? "")
            if key.required { what += ", required" }
            if let defaultText = key.defaultText { what += ", default \(defaultText)" }
            let name = key.name.padding(toLength: width, withPad: " ", startingAt: 0)
            return "\(name)  \(what)" + (key.summary.isEmpty ? "" : ": \(key.summary)")
        }
    }
}

/// A checked, normalized config value, as the config_* accessors hand it out.
enum PluginConfigValue: Sendable {
    case integer(Int64)
    case text([UInt8])
    case hostPort(host: String, port: UInt32)
    case list([[UInt8]])
    case map([(key: String, value: [UInt8])])
    /// A value the plugin checks itself, as JSON text.
    case json(String)
}
