import Yams

/// Converts a plugin's `config:` subtree to the JSON text its init receives.
enum YAMLToJSON {
    static func convert(_ node: Node?, reader: YAMLReader, path: String) throws(ConfigError) -> String {
        guard let node else { return "{}" }
        var output = ""
        try append(node, to: &output, reader: reader, path: path)
        return output
    }

    private static func append(_ node: Node, to output: inout String, reader: YAMLReader,
                               path: String) throws(ConfigError) {
        switch node {
        case let .scalar(scalar):
            switch YAMLReader.tag(of: node) {
            case .null: output += "null"
            case .bool: output += node.bool == true ? "true" : "false"
            case .int:
                guard let value = node.int else { throw reader.fail(node, path, "integer out of range") }
                output += String(value)
            case .float:
                guard let value = node.float, value.isFinite else {
                    throw reader.fail(node, path, "\(scalar.string) cannot be represented in JSON")
                }
                output += String(value)
            default: appendString(scalar.string, to: &output)
            }
        case let .mapping(mapping):
            output += "{"
            for (index, (keyNode, value)) in mapping.enumerated() {
                guard case let .scalar(key) = keyNode else {
                    throw reader.fail(keyNode, path, "mapping keys must be plain strings")
                }
                if index > 0 { output += "," }
                appendString(key.string, to: &output)
                output += ":"
                try append(value, to: &output, reader: reader, path: "\(path).\(key.string)")
            }
            output += "}"
        case let .sequence(sequence):
            output += "["
            for (index, item) in sequence.enumerated() {
                if index > 0 { output += "," }
                try append(item, to: &output, reader: reader, path: "\(path)[\(index)]")
            }
            output += "]"
        case .alias:
            throw reader.fail(node, path, "YAML aliases are not supported in plugin config")
        }
    }

    static func appendString(_ text: String, to output: inout String) {
        JSONValue.quote(text, into: &output)
    }
}
