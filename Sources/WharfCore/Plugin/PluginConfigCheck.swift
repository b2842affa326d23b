/// Checking an instance's `config:` against its plugin's schema, with the same strictness
/// and messages as the rest of the config, and normalizing each value (durations to ms,
/// sizes to bytes, escapes decoded, defaults filled in).
extension PluginConfigSchema {
    /// The checked values, and the same as JSON for args->config_json.
    struct Checked: Sendable {
        let values: [String: PluginConfigValue]
        let json: String
    }

    /// `tree`: the instance's `config:` (nil: none given); `location`: where to point when
    /// it is absent; `path`: "plugins.NAME.config".
    func check(_ tree: ConfigTree?, at location: SourceLocation, path: String) throws(ConfigError) -> Checked {
        var given: [(key: String, keyLocation: SourceLocation, value: ConfigTree)] = []
        switch tree {
        case nil: break
        case let .mapping(entries, _)?: given = entries
        case let other?: throw ConfigError(other.location, path, "expected a mapping, got \(other.described)")
        }
        let names = keys.map(\.name)
        var values: [String: PluginConfigValue] = [:]
        for entry in given {
            guard let key = keys.first(where: { $0.name == entry.key }) else {
                let suggestion = YAMLReader.closest(to: entry.key, in: names).map { " (did you mean '\($0)'?)" } ?? ""
                let expected = names.isEmpty ? "this plugin takes no config" : "expected one of: " + names.joined(separator: ", ")
                throw ConfigError(entry.keyLocation, path, "unknown key '\(entry.key)'\(suggestion); \(expected)")
            }
            values[key.name] = try key.value(of: entry.value, path: "\(path).\(key.name)")
        }
        for key in keys where values[key.name] == nil {
            if let value = key.defaultValue {
                values[key.name] = value
            } else if key.required {
                let about = key.summary.isEmpty ? "" : " (\(key.summary))"
                throw ConfigError(tree?.location ?? location, path, "missing required key '\(key.name)'\(about)")
            }
        }
        return Checked(values: values, json: Self.json(values, order: keys))
    }

    private static func json(_ values: [String: PluginConfigValue], order: [Key]) -> String {
        var output = "{"
        for key in order {
            guard let value = values[key.name] else { continue }
            if output.count > 1 { output += "," }
            JSONValue.quote(key.name, into: &output)
            output += ":"
            switch value {
            case let .integer(number): output += key.type == .boolean ? (number != 0 ? "true" : "false") : String(number)
            case let .text(bytes): JSONValue.quote(String(decoding: bytes, as: UTF8.self), into: &output)
            case let .hostPort(host, port):
                JSONValue.quote(Endpoint.text(host, port), into: &output)
            case let .list(items):
                output += "[" + items.map { item in
                    var quoted = ""
                    JSONValue.quote(String(decoding: item, as: UTF8.self), into: &quoted)
                    return quoted
                }.joined(separator: ",") + "]"
            case let .json(text):
                output += text
            case let .map(entries):
                output += "{" + entries.map { entry in
                    var pair = ""
                    JSONValue.quote(entry.key, into: &pair)
                    pair += ":"
                    JSONValue.quote(String(decoding: entry.value, as: UTF8.self), into: &pair)
                    return pair
                }.joined(separator: ",") + "}"
            }
        }
        return output + "}"
    }
}

extension PluginLibrary {
    /// What an instance's init receives for `config`: with a schema, the checked, normalized
    /// JSON and the typed values for the config_* accessors; without one, the config's JSON
    /// as written. `path` is "plugins.NAME.config".
    func initConfig(_ config: ConfigTree?, at location: SourceLocation,
                    path: String) throws(ConfigError) -> (json: String, values: [String: PluginConfigValue]?) {
        guard let configSchema else { return (config?.json ?? "{}", nil) }
        let checked = try configSchema.check(config, at: location, path: path)
        return (checked.json, checked.values)
    }
}

extension PluginConfigSchema.Key {
    /// One value checked against this key.
    func value(of tree: ConfigTree, path: String) throws(ConfigError) -> PluginConfigValue {
        func fail(_ message: String) -> ConfigError { ConfigError(tree.location, path, message) }
        let expected = "expected " + expectation
        switch type {
        case .integer:
            guard case let .scalar(text, .integer, _) = tree, let number = Int64(text) else {
                throw fail("\(expected), got \(tree.described)")
            }
            return .integer(try bounded(number, expected, tree, path))
        case .boolean:
            guard case let .scalar(text, .boolean, _) = tree else { throw fail("\(expected), got \(tree.described)") }
            return .integer(text.lowercased() == "true" ? 1 : 0)
        case .string, .bytes:
            guard case let .scalar(text, .string, _) = tree else { throw fail("\(expected), got \(tree.described)") }
            let bytes = type == .bytes ? try Self.unescape(text, fail) : Array(text.utf8)
            _ = try bounded(Int64(bytes.count), expected, tree, path)
            return .text(bytes)
        case .duration, .size:
            guard case let .scalar(text, kind, _) = tree, kind == .integer || kind == .string,
                  let amount = type == .duration ? Self.milliseconds(text) : Self.bytes(text) else {
                throw fail("\(expected), got \(tree.described)")
            }
            return .integer(try bounded(amount, expected, tree, path))
        case .hostPort:
            guard case let .scalar(text, .string, _) = tree, let (host, port) = Self.hostPort(text) else {
                throw fail("\(expected), got \(tree.described)")
            }
            return .hostPort(host: host, port: port)
        case .list:
            guard case let .sequence(items, _) = tree else { throw fail("\(expected), got \(tree.described)") }
            var texts: [[UInt8]] = []
            for (index, item) in items.enumerated() {
                guard case let .scalar(text, .string, _) = item else {
                    throw ConfigError(item.location, "\(path)[\(index)]", "expected a string, got \(item.described)")
                }
                texts.append(Array(text.utf8))
            }
            _ = try bounded(Int64(texts.count), expected, tree, path)
            return .list(texts)
        case .json:
            return .json(tree.json)
        case .map:
            guard case let .mapping(entries, _) = tree else { throw fail("\(expected), got \(tree.described)") }
            var pairs: [(key: String, value: [UInt8])] = []
            for entry in entries {
                guard case let .scalar(text, .string, _) = entry.value else {
                    throw ConfigError(entry.value.location, "\(path).\(entry.key)", "expected a string, got \(entry.value.described)")
                }
                pairs.append((entry.key, Array(text.utf8)))
            }
            _ = try bounded(Int64(pairs.count), expected, tree, path)
            return .map(pairs)
        }
    }

    /// What a value of this key must be, e.g. "an integer 1-1073741824".
    var expectation: String {
        switch type {
        case .integer: bounds.map { "an integer \($0.lowerBound)-\($0.upperBound)" } ?? "an integer"
        case .boolean: "true or false"
        case .string: "a string" + (bounds.map { " of \($0.lowerBound)-\($0.upperBound) bytes" } ?? "")
        case .bytes: "a string (escapes \\n \\r \\t \\0 \\\\ \\xHH)" + (bounds.map { " of \($0.lowerBound)-\($0.upperBound) bytes" } ?? "")
        case .duration: "a duration (250ms, 10s, 5m, 2h)" + (bounds.map { " of \($0.lowerBound)-\($0.upperBound) ms" } ?? "")
        case .size: "a size (512, 64k, 1MiB)" + (bounds.map { " of \($0.lowerBound)-\($0.upperBound) bytes" } ?? "")
        case .hostPort: "\"host:port\" or \"[ipv6]:port\""
        case .list: "a list of strings" + (bounds.map { " (\($0.lowerBound)-\($0.upperBound) items)" } ?? "")
        case .map: "a mapping of strings" + (bounds.map { " (\($0.lowerBound)-\($0.upperBound) entries)" } ?? "")
        case .json: "any value"
        }
    }

    func describe(_ bounds: ClosedRange<Int64>) -> String {
        switch type {
        case .integer: "\(bounds.lowerBound)-\(bounds.upperBound)"
        case .duration: "\(bounds.lowerBound)-\(bounds.upperBound) ms"
        case .list: "of \(bounds.lowerBound)-\(bounds.upperBound) items"
        case .map: "of \(bounds.lowerBound)-\(bounds.upperBound) entries"
        default: "of \(bounds.lowerBound)-\(bounds.upperBound) bytes"
        }
    }

    private func bounded(_ value: Int64, _ expected: String, _ tree: ConfigTree, _ path: String) throws(ConfigError) -> Int64 {
        if let bounds, !bounds.contains(value) {
            let got = tree.described
            throw ConfigError(tree.location, path, "\(expected), got \(got)\(String(value) == got ? "" : " (\(value))")")
        }
        return value
    }

    static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        if let plain = Int64(text) { return plain }
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Int64(text.dropLast(suffix.count)),
                  number >= 0, number <= Int64.max / scale else { continue }
            return number * scale
        }
        return nil
    }

    static func bytes(_ text: String) -> Int64? {
        let lower = text.lowercased()
        let units: [(String, Int64)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1 << 10),
                                        ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)]
        if let plain = Int64(lower), plain >= 0 { return plain }
        for (suffix, scale) in units where lower.hasSuffix(suffix) {
            guard let number = Int64(lower.dropLast(suffix.count)),
                  number >= 0, number <= Int64.max / scale else { return nil }
            return number * scale
        }
        return nil
    }

    static func hostPort(_ text: String) -> (String, UInt32)? {
        var host = Substring(text), portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            host = parts[0]
            portText = parts[1]
        }
        guard !host.isEmpty, host.utf8.count <= 255, let port = UInt32(portText), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// Backslash escapes of a bytes value: \n \r \t \0 \\ \xHH.
    static func unescape(_ text: String, _ fail: (String) -> ConfigError) throws(ConfigError) -> [UInt8] {
        var out: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == 92 else { out.append(byte); continue }
            switch input.popFirst() {
            case 110: out.append(10)
            case 114: out.append(13)
            case 116: out.append(9)
            case 48: out.append(0)
            case 92: out.append(92)
            case 120:
                guard input.count >= 2, let value = UInt8(String(decoding: input.prefix(2), as: UTF8.self), radix: 16) else {
                    throw fail("\\x needs two hex digits")
                }
                input = input.dropFirst(2)
                out.append(value)
            default: throw fail("unknown escape (use \\n \\r \\t \\0 \\\\ \\xHH)")
            }
        }
        return out
    }
}
