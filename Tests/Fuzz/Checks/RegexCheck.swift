@testable import WharfCore

/// The byte regex against a reference, two ways:
/// - raw bytes as a pattern: the parser never crashes, and an error's offset lies inside
///   the pattern;
/// - a pattern generated from the input's bytes (so it is always in the dialect) and an
///   input: the streaming matcher, fed in arbitrary chunks, finds the same earliest match
///   end as a direct set-of-positions evaluation of the pattern's tree.
enum RegexCheck {
    static func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        if input.byte() & 3 == 0 {
            try parseRaw(input.bytes(upTo: 40))
            return
        }
        let flags = UInt32(input.below(4))
        let anchored = input.below(4) == 0
        var generator = PatternGenerator(input: input)
        let tree = generator.node(depth: 0)
        input = generator.input
        let pattern = (anchored ? "^" : "") + tree.pattern
        let subject = input.text(upTo: 24, alphabet: PatternGenerator.subjectAlphabet)
        let regex: ByteRegex
        do {
            regex = try ByteRegex(pattern: Array(pattern.utf8), flags: flags)
        } catch {
            throw FuzzFailure("generated pattern \(pattern.debugDescription) refused: \(error)")
        }
        let expected = Reference(flags: flags).earliestEnd(tree, in: subject, anchored: anchored)
        var matcher = RegexMatcher(regex: regex)
        var found: Int?
        var consumed = 0
        var rest = subject[...]
        repeat { // the subject in chunks the input chooses; an empty subject is one empty scan
            let size = rest.isEmpty ? 0 : 1 + input.below(rest.count)
            if let end = Array(rest.prefix(size)).withUnsafeBytes({ matcher.scan($0) }) {
                found = consumed + end
                break
            }
            consumed += size
            rest = rest.dropFirst(size)
        } while !rest.isEmpty
        guard found == expected else {
            throw FuzzFailure("pattern \(pattern.debugDescription) flags \(flags) on "
                + "\(String(decoding: subject, as: UTF8.self).debugDescription): matcher \(String(describing: found)), "
                + "reference \(String(describing: expected))")
        }
    }

    private static func parseRaw(_ pattern: [UInt8]) throws(FuzzFailure) {
        do {
            _ = try ByteRegex(pattern: pattern, flags: 0)
        } catch {
            guard error.offset >= 0, error.offset <= pattern.count else {
                throw FuzzFailure("error offset \(error.offset) outside a \(pattern.count)-byte pattern")
            }
        }
    }
}

/// A pattern's tree, with its text in Wharf's dialect.
indirect enum PatternNode {
    case literal(UInt8)
    case anyByte
    case set([UInt8], negated: Bool)
    case digit, word, space
    case sequence([PatternNode])
    case either(PatternNode, PatternNode)
    case repeated(PatternNode, min: Int, max: Int?, lazy: Bool)

    var pattern: String {
        switch self {
        case let .literal(byte): PatternNode.escape(byte)
        case .anyByte: "."
        case let .set(bytes, negated): "[" + (negated ? "^" : "") + bytes.map(PatternNode.escape).joined() + "]"
        case .digit: "\\d"
        case .word: "\\w"
        case .space: "\\s"
        case let .sequence(items): items.map(\.pattern).joined()
        case let .either(a, b): "(?:\(a.pattern)|\(b.pattern))"
        case let .repeated(node, min, max, lazy):
            "(?:\(node.pattern))" + PatternNode.quantifier(min, max) + (lazy ? "?" : "")
        }
    }

    static func escape(_ byte: UInt8) -> String {
        switch byte {
        case 10: "\\n"
        case UInt8(ascii: "."), UInt8(ascii: "-"): "\\" + String(UnicodeScalar(byte))
        default: String(UnicodeScalar(byte))
        }
    }

    static func quantifier(_ min: Int, _ max: Int?) -> String {
        switch (min, max) {
        case (0, nil): "*"
        case (1, nil): "+"
        case (0, 1): "?"
        case let (m, nil): "{\(m),}"
        case let (m, n?) where m == n: "{\(m)}"
        case let (m, n?): "{\(m),\(n)}"
        }
    }
}

/// Builds small patterns from fuzz bytes.
struct PatternGenerator {
    static let literals = Array("abA1\n .".utf8)
    static let subjectAlphabet = Array("abAB1\n .z_".utf8)
    var input: FuzzInput

    mutating func node(depth: Int) -> PatternNode {
        let choice = depth >= 3 ? input.below(6) : input.below(9)
        switch choice {
        case 0, 1: return .literal(Self.literals[input.below(Self.literals.count)])
        case 2: return .anyByte
        case 3: return .set((0...input.below(3)).map { _ in Self.literals[input.below(Self.literals.count)] },
                            negated: input.bool())
        case 4: return [PatternNode.digit, .word, .space][input.below(3)]
        case 5: return .literal(Self.literals[input.below(2)])
        case 6: return .sequence((0...input.below(3)).map { _ in node(depth: depth + 1) })
        case 7: return .either(node(depth: depth + 1), node(depth: depth + 1))
        default:
            let min = input.below(3)
            let max: Int? = input.bool() ? nil : min + input.below(3)
            return .repeated(node(depth: depth + 1), min: min, max: max, lazy: input.bool())
        }
    }
}

/// Evaluates a tree directly: every position where a match starting at `start` can end.
struct Reference {
    let flags: UInt32
    var caseless: Bool { flags & ByteRegex.caselessFlag != 0 }
    var dotAll: Bool { flags & ByteRegex.dotAllFlag != 0 }

    func earliestEnd(_ node: PatternNode, in subject: [UInt8], anchored: Bool) -> Int? {
        var best: Int?
        for start in anchored ? [0] : Array(0...subject.count) {
            if let end = ends(node, subject, from: start).min(), best == nil || end < best! { best = end }
        }
        return best
    }

    private func ends(_ node: PatternNode, _ subject: [UInt8], from start: Int) -> Set<Int> {
        switch node {
        case .sequence(let items):
            var positions: Set<Int> = [start]
            for item in items { positions = Set(positions.flatMap { ends(item, subject, from: $0) }) }
            return positions
        case let .either(a, b):
            return ends(a, subject, from: start).union(ends(b, subject, from: start))
        case let .repeated(inner, min, max, _):
            var current: Set<Int> = [start]
            for _ in 0..<min { current = Set(current.flatMap { ends(inner, subject, from: $0) }) }
            var all = current
            var rounds = 0
            while max == nil || rounds < max! - min {
                let next = Set(current.flatMap { ends(inner, subject, from: $0) }).subtracting(all)
                if next.isEmpty && max == nil { break }
                all.formUnion(next)
                current = next
                rounds += 1
                if current.isEmpty { break }
            }
            return all
        default:
            guard start < subject.count, matches(node, subject[start]) else { return [] }
            return [start + 1]
        }
    }

    private func matches(_ node: PatternNode, _ byte: UInt8) -> Bool {
        switch node {
        case let .literal(expected): same(expected, byte)
        case .anyByte: dotAll || byte != 10
        case let .set(bytes, negated): bytes.contains { same($0, byte) } != negated
        case .digit: byte >= 48 && byte <= 57
        case .word: ByteSet.word.contains(byte)
        case .space: [32, 9, 10, 13, 12, 11].contains(byte)
        default: false
        }
    }

    private func same(_ a: UInt8, _ b: UInt8) -> Bool {
        guard caseless else { return a == b }
        func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
        return lower(a) == lower(b)
    }
}
