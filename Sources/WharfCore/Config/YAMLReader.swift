import Yams

/// Typed, strict access to a composed YAML tree, where every failure names the file,
/// line, column and key path. Scalars resolve as in YAML 1.2's core schema: only
/// true/false are booleans, so `no` or `off` stay strings instead of silently flipping.
struct YAMLReader {
    let file: String

    static let resolver: Resolver = {
        // YAML 1.1's yes/no/on/off booleans and timestamps are dropped; `<<` and `=` are plain.
        try! Resolver.default.removing(.timestamp).removing(.merge).removing(.value)
            .replacing(.bool, with: "^(?:true|True|TRUE|false|False|FALSE)$")
    }()

    func compose(_ text: String) throws(ConfigError) -> Node? {
        do throws(YAMLBudget.Exceeded) {
            try YAMLBudget.check(text)
        } catch {
            throw ConfigError(SourceLocation(file: file, line: error.line, column: error.column), "",
                              "the document expands to more than \(YAMLBudget.maximumValues) values "
                                + "(aliases repeating aliases?)")
        }
        do {
            return try Yams.compose(yaml: text, Self.resolver)
        } catch let error as YamlError {
            throw translate(error)
        } catch {
            throw ConfigError(SourceLocation(file: file, line: 1, column: 1), "", "cannot parse: \(error)")
        }
    }

    private func translate(_ error: YamlError) -> ConfigError {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        func contextText(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return ConfigError(at(mark), "", "invalid YAML: \(problem)\(contextText(context))")
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return ConfigError(at(context.mark), "", "duplicate key \(keys) in a mapping")
        default:
            return ConfigError(SourceLocation(file: file, line: 1, column: 1), "", "invalid YAML: \(error)")
        }
    }

    /// The resolved type of a scalar (`.int`, `.str`, ...).
    static func tag(of node: Node) -> Tag.Name {
        Tag.Name(rawValue: node.tag.rawValue)
    }

    func location(of node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func fail(_ node: Node, _ path: String, _ message: String) -> ConfigError {
        ConfigError(location(of: node), path, message)
    }

    /// The entries of a mapping, after checking every key is one of `allowed`.
    /// The entries of a mapping whose keys are all in `allowed` (any key when empty). A key
    /// in `renamed` is an error that names its new spelling.
    func mapping(_ node: Node, _ path: String, allowed: [String],
                 renamed: [String: String] = [:]) throws(ConfigError) -> [(key: String, node: Node)] {
        guard case let .mapping(mapping) = node else {
            throw fail(node, path, "expected a mapping, got \(describe(node))")
        }
        var entries: [(key: String, node: Node)] = []
        for (keyNode, value) in mapping {
            guard case let .scalar(scalar) = keyNode else {
                throw fail(keyNode, path, "keys must be plain strings")
            }
            let key = scalar.string
            if let replacement = renamed[key] {
                throw fail(keyNode, path, "'\(key)' was renamed: \(replacement)")
            }
            if !allowed.isEmpty, !allowed.contains(key) {
                let suggestion = Self.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                throw fail(keyNode, path, "unknown key '\(key)'\(suggestion); expected one of: "
                    + allowed.joined(separator: ", "))
            }
            entries.append((key, value))
        }
        return entries
    }

    func int(_ node: Node, _ path: String, in range: ClosedRange<Int>, what: String? = nil) throws(ConfigError) -> Int {
        let expected = what ?? "an integer \(range.lowerBound)-\(range.upperBound)"
        guard case .scalar = node, Self.tag(of: node) == .int, let value = node.int else {
            throw fail(node, path, "expected \(expected), got \(describe(node))")
        }
        guard range.contains(value) else { throw fail(node, path, "expected \(expected), got \(value)") }
        return value
    }

    func bool(_ node: Node, _ path: String) throws(ConfigError) -> Bool {
        guard case .scalar = node, Self.tag(of: node) == .bool, let value = node.bool else {
            throw fail(node, path, "expected true or false, got \(describe(node))")
        }
        return value
    }

    func string(_ node: Node, _ path: String) throws(ConfigError) -> String {
        guard case let .scalar(scalar) = node, Self.tag(of: node) == .str else {
            throw fail(node, path, "expected a string, got \(describe(node))")
        }
        guard !scalar.string.isEmpty else { throw fail(node, path, "must not be empty") }
        return scalar.string
    }

    func stringList(_ node: Node, _ path: String) throws(ConfigError) -> [String] {
        guard case let .sequence(sequence) = node else {
            throw fail(node, path, "expected a list of strings, got \(describe(node))")
        }
        var values: [String] = []
        for (index, item) in sequence.enumerated() {
            values.append(try string(item, "\(path)[\(index)]"))
        }
        return values
    }

    /// How a value reads in an error: `"eighty"`, `3.5`, `a mapping`.
    func describe(_ node: Node) -> String {
        switch node {
        case let .scalar(scalar):
            switch Self.tag(of: node) {
            case .str: return "\"\(scalar.string)\""
            case .null: return "nothing (null)"
            default: return scalar.string
            }
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func closest(to word: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, word.count / 3) else { return nil }
        return best
    }

    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
