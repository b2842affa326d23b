import NIOCore
import Yams

/// A `cases.yaml` for `wharf plugin test`: the plugin's config, then cases, each a script over
/// in-memory connections and fake upstreams, run on a virtual clock.
///
///     config: {max_bytes: 64}              # the plugin's config for every case (optional)
///     cases:
///       - name: echoes a line
///         config: {...}                    # replaces the file's for this case (optional)
///         connections: 2                   # client connections opened at the start (default 1)
///         upstreams: {"127.0.0.1:6379": accept}   # accept | refuse | timeout | unreachable
///         steps:
///           - send: "hello\n"              # or {hex: "00ff"}, {repeat: "ab", times: 100}
///             split: [2, 3]                # or bytewise: the bytes arrive in pieces
///             on: 2                        # which connection (default 1)
///           - expect: "hello\n"            # or {regex: "..."}, {hex: "..."}; within: 2s
///           - expect_nothing: true
///           - half_close: true             # the client sends FIN
///           - reset: true                  # the client resets
///           - advance: 5s                  # move the virtual clock
///           - expect_close: {reason: limit, within: 1s}    # reason: ok, limit, timeout, ...
///           - upstream_expect: {upstream: "127.0.0.1:6379", data: "GET\r\n"}
///           - upstream_send: {upstream: "127.0.0.1:6379", data: "+OK\r\n"}
///           - upstream_close: {upstream: "127.0.0.1:6379"}
///           - expect_upstream_connections: {upstream: "127.0.0.1:6379", count: 1}
public struct PluginTestFile: Sendable {
    public var config: ConfigTree?
    public var cases: [PluginTestCase]

    public static func parse(_ text: String, file: String) throws(ConfigError) -> PluginTestFile {
        let reader = YAMLReader(file: file)
        guard let root = try reader.compose(text) else {
            throw ConfigError(SourceLocation(file: file, line: 1, column: 1), "", "the file is empty")
        }
        var result = PluginTestFile(config: nil, cases: [])
        for (key, node) in try reader.mapping(root, "", allowed: ["config", "cases"]) {
            if key == "config" {
                result.config = try ConfigTree.make(node, reader: reader, path: "config")
            } else {
                guard case let .sequence(items) = node else { throw reader.fail(node, "cases", "expected a list of cases") }
                for (index, item) in items.enumerated() {
                    result.cases.append(try PluginTestCase.parse(item, reader: reader, path: "cases[\(index)]"))
                }
            }
        }
        guard !result.cases.isEmpty else { throw reader.fail(root, "cases", "no cases") }
        return result
    }
}

public struct PluginTestCase: Sendable {
    public enum UpstreamBehavior: String, Sendable { case accept, refuse, timeout, unreachable }

    public enum Expectation: Sendable {
        case bytes([UInt8])
        case regex(String)
    }

    public enum Split: Sendable {
        case whole
        case at([Int])
        case bytewise
    }

    public enum Action: Sendable {
        case send(connection: Int, bytes: [UInt8], split: Split)
        case expect(connection: Int, Expectation, within: TimeAmount)
        case expectNothing(connection: Int)
        case expectClose(connection: Int, reason: String?, within: TimeAmount)
        case halfClose(connection: Int)
        case reset(connection: Int)
        case advance(TimeAmount)
        case upstreamExpect(upstream: String, Expectation, within: TimeAmount)
        case upstreamSend(upstream: String, bytes: [UInt8])
        case upstreamClose(upstream: String)
        case expectUpstreamConnections(upstream: String, count: Int)
    }

    public struct Step: Sendable {
        public let action: Action
        public let location: SourceLocation
    }

    public var name: String
    public var location: SourceLocation
    public var config: ConfigTree?
    public var connections = 1
    public var upstreams: [String: UpstreamBehavior] = [:]
    public var steps: [Step] = []

    static func parse(_ node: Node, reader: YAMLReader, path: String) throws(ConfigError) -> PluginTestCase {
        var result = PluginTestCase(name: path, location: reader.location(of: node))
        for (key, value) in try reader.mapping(node, path, allowed: ["name", "config", "connections", "upstreams", "steps"]) {
            switch key {
            case "name": result.name = try reader.string(value, "\(path).name")
            case "config": result.config = try ConfigTree.make(value, reader: reader, path: "\(path).config")
            case "connections": result.connections = try reader.int(value, "\(path).connections", in: 1...1000)
            case "upstreams":
                for (target, behavior) in try reader.mapping(value, "\(path).upstreams", allowed: []) {
                    let text = try reader.string(behavior, "\(path).upstreams.\(target)")
                    guard let parsed = UpstreamBehavior(rawValue: text) else {
                        throw reader.fail(behavior, "\(path).upstreams.\(target)",
                                          "expected accept, refuse, timeout or unreachable, got \"\(text)\"")
                    }
                    result.upstreams[target] = parsed
                }
            default:
                guard case let .sequence(steps) = value else { throw reader.fail(value, "\(path).steps", "expected a list") }
                for (index, step) in steps.enumerated() {
                    let action = try StepParser(reader: reader, path: "\(path).steps[\(index)]").parse(step)
                    result.steps.append(Step(action: action, location: reader.location(of: step)))
                }
            }
        }
        return result
    }
}

/// One step's mapping: its action key, and the modifiers that go with it.
private struct StepParser {
    let reader: YAMLReader
    let path: String

    static let actions = ["send", "expect", "expect_nothing", "expect_close", "half_close", "reset", "advance",
                          "upstream_expect", "upstream_send", "upstream_close", "expect_upstream_connections"]

    func parse(_ node: Node) throws(ConfigError) -> PluginTestCase.Action {
        let entries = try reader.mapping(node, path, allowed: Self.actions + ["on", "split", "within"])
        let named = entries.filter { Self.actions.contains($0.key) }
        guard named.count == 1, let (action, value) = named.first else {
            throw reader.fail(node, path, "a step has exactly one of: " + Self.actions.joined(separator: ", "))
        }
        let modifiers = Dictionary(entries.filter { !Self.actions.contains($0.key) }.map { ($0.key, $0.node) },
                                   uniquingKeysWith: { first, _ in first })
        let connection = try modifiers["on"].map { node throws(ConfigError) in try reader.int(node, "\(path).on", in: 1...1000) } ?? 1
        let within = try modifiers["within"].map { node throws(ConfigError) in try duration(node, "\(path).within") } ?? .zero
        switch action {
        case "send": return .send(connection: connection, bytes: try bytes(value, "\(path).send"), split: try split(modifiers["split"]))
        case "expect": return .expect(connection: connection, try expectation(value, "\(path).expect"), within: within)
        case "expect_nothing": return .expectNothing(connection: connection)
        case "half_close": return .halfClose(connection: connection)
        case "reset": return .reset(connection: connection)
        case "advance": return .advance(try duration(value, "\(path).advance"))
        case "expect_close":
            var reason: String?
            var closeWithin = within
            if case .mapping = value {
                for (key, item) in try reader.mapping(value, "\(path).expect_close", allowed: ["reason", "within"]) {
                    if key == "reason" { reason = try reader.string(item, "\(path).expect_close.reason") }
                    else { closeWithin = try duration(item, "\(path).expect_close.within") }
                }
            }
            return .expectClose(connection: connection, reason: reason, within: closeWithin)
        default:
            return try upstreamAction(action, value, within: within)
        }
    }

    private func upstreamAction(_ action: String, _ value: Node, within: TimeAmount) throws(ConfigError) -> PluginTestCase.Action {
        let key = "\(path).\(action)"
        var upstream: String?
        var data: Node?
        var count: Int?
        var wait = within
        for (name, item) in try reader.mapping(value, key, allowed: ["upstream", "data", "count", "within"]) {
            switch name {
            case "upstream": upstream = try reader.string(item, "\(key).upstream")
            case "data": data = item
            case "count": count = try reader.int(item, "\(key).count", in: 0...100_000)
            default: wait = try duration(item, "\(key).within")
            }
        }
        guard let upstream else { throw reader.fail(value, key, "missing 'upstream' (\"host:port\")") }
        switch action {
        case "upstream_expect":
            guard let data else { throw reader.fail(value, key, "missing 'data'") }
            return .upstreamExpect(upstream: upstream, try expectation(data, "\(key).data"), within: wait)
        case "upstream_send":
            guard let data else { throw reader.fail(value, key, "missing 'data'") }
            return .upstreamSend(upstream: upstream, bytes: try bytes(data, "\(key).data"))
        case "upstream_close": return .upstreamClose(upstream: upstream)
        default:
            guard let count else { throw reader.fail(value, key, "missing 'count'") }
            return .expectUpstreamConnections(upstream: upstream, count: count)
        }
    }

    /// A string, {hex: "..."} or {repeat: "...", times: N}.
    private func bytes(_ node: Node, _ key: String) throws(ConfigError) -> [UInt8] {
        if case let .scalar(scalar) = node { return Array(scalar.string.utf8) }
        let entries = try reader.mapping(node, key, allowed: ["hex", "repeat", "times"])
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        if let hex = values["hex"] {
            let text = try reader.string(hex, "\(key).hex").filter { !$0.isWhitespace }
            var out: [UInt8] = []
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) ?? text.endIndex
                guard let byte = UInt8(text[index..<next], radix: 16), text.distance(from: index, to: next) == 2 else {
                    throw reader.fail(hex, "\(key).hex", "expected pairs of hex digits")
                }
                out.append(byte)
                index = next
            }
            return out
        }
        guard let unit = values["repeat"], let times = values["times"] else {
            throw reader.fail(node, key, "expected a string, {hex: ...} or {repeat: ..., times: N}")
        }
        let piece = Array(try reader.string(unit, "\(key).repeat").utf8)
        let count = try reader.int(times, "\(key).times", in: 1...100_000_000)
        return Array([[UInt8]](repeating: piece, count: count).joined())
    }

    private func expectation(_ node: Node, _ key: String) throws(ConfigError) -> PluginTestCase.Expectation {
        if case .mapping = node, let regex = try reader.mapping(node, key, allowed: ["regex", "hex", "repeat", "times"])
            .first(where: { $0.key == "regex" }) {
            return .regex(try reader.string(regex.node, "\(key).regex"))
        }
        return .bytes(try bytes(node, key))
    }

    private func split(_ node: Node?) throws(ConfigError) -> PluginTestCase.Split {
        guard let node else { return .whole }
        if case let .scalar(scalar) = node, scalar.string == "bytewise" { return .bytewise }
        guard case let .sequence(items) = node else {
            throw reader.fail(node, "\(path).split", "expected bytewise or a list of offsets")
        }
        var offsets: [Int] = []
        for (index, item) in items.enumerated() { offsets.append(try reader.int(item, "\(path).split[\(index)]", in: 0...Int(Int32.max))) }
        return .at(offsets)
    }

    private func duration(_ node: Node, _ key: String) throws(ConfigError) -> TimeAmount {
        guard case let .scalar(scalar) = node, let milliseconds = PluginConfigSchema.Key.milliseconds(scalar.string) else {
            throw reader.fail(node, key, "expected a duration (250ms, 10s, 5m) or milliseconds, got \(reader.describe(node))")
        }
        return .milliseconds(milliseconds)
    }
}
