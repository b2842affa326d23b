import Yams

/// A plugin's `config:` subtree, kept with where each value was written, so that a plugin's
/// schema can be checked after its library is loaded with the same messages as the rest of
/// the config; its `json` is what the plugin's init receives. (Yams' `Node` is not
/// `Sendable`; this is the part that is needed.) Scalars are kept in their JSON spelling:
/// integers, floats and booleans are resolved once, here.
public indirect enum ConfigTree: Sendable {
    public enum ScalarKind: Sendable { case string, integer, float, boolean, null }

    case scalar(String, ScalarKind, SourceLocation)
    case mapping([(key: String, keyLocation: SourceLocation, value: ConfigTree)], SourceLocation)
    case sequence([ConfigTree], SourceLocation)

    var location: SourceLocation {
        switch self {
        case let .scalar(_, _, location), let .mapping(_, location), let .sequence(_, location): location
        }
    }

    /// How a value reads in an error: `"eighty"`, `-1`, `a mapping`.
    var described: String {
        switch self {
        case let .scalar(text, kind, _):
            switch kind {
            case .string: "\"\(text)\""
            case .null: "nothing (null)"
            default: text
            }
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    /// Reads a composed YAML node (aliases are refused, as in plugin config). A value JSON
    /// cannot carry (an integer beyond 64 bits, an infinite float) is an error here.
    static func make(_ node: Node, reader: YAMLReader, path: String) throws(ConfigError) -> ConfigTree {
        let location = reader.location(of: node)
        switch node {
        case let .scalar(scalar):
            switch YAMLReader.tag(of: node) {
            case .int:
                guard let value = node.int else { throw reader.fail(node, path, "integer out of range") }
                return .scalar(String(value), .integer, location)
            case .float:
                guard let value = node.float, value.isFinite else {
                    throw reader.fail(node, path, "\(scalar.string) cannot be represented in JSON")
                }
                return .scalar(String(value), .float, location)
            case .bool: return .scalar(node.bool == true ? "true" : "false", .boolean, location)
            case .null: return .scalar("null", .null, location)
            default: return .scalar(scalar.string, .string, location)
            }
        case let .mapping(mapping):
            var entries: [(key: String, keyLocation: SourceLocation, value: ConfigTree)] = []
            for (keyNode, value) in mapping {
                guard case let .scalar(key) = keyNode else {
                    throw reader.fail(keyNode, path, "mapping keys must be plain strings")
                }
                entries.append((key.string, reader.location(of: keyNode),
                                try make(value, reader: reader, path: "\(path).\(key.string)")))
            }
            return .mapping(entries, location)
        case let .sequence(sequence):
            var items: [ConfigTree] = []
            for (index, item) in sequence.enumerated() {
                items.append(try make(item, reader: reader, path: "\(path)[\(index)]"))
            }
            return .sequence(items, location)
        case .alias:
            throw reader.fail(node, path, "YAML aliases are not supported in plugin config")
        }
    }
}

extension ConfigTree {
    /// As JSON: what a plugin without a schema receives, and a schema's `json` values.
    var json: String {
        var output = ""
        switch self {
        case let .scalar(text, kind, _):
            if kind == .string { JSONValue.quote(text, into: &output) } else { output = text }
        case let .mapping(entries, _):
            output = "{" + entries.map { entry in
                var pair = ""
                JSONValue.quote(entry.key, into: &pair)
                return pair + ":" + entry.value.json
            }.joined(separator: ",") + "}"
        case let .sequence(items, _):
            output = "[" + items.map(\.json).joined(separator: ",") + "]"
        }
        return output
    }
}
