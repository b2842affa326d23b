/// The syntax tree of a byte pattern (see the dialect in `include/wharf.h`).
indirect enum RegexNode: Equatable {
    case empty
    case bytes(ByteSet)
    case concatenation([RegexNode])
    case alternation([RegexNode])
    case repetition(RegexNode, min: Int, max: Int?)
}

public struct RegexSyntaxError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable { case invalid, unsupported }
    public let kind: Kind
    public let offset: Int
    public let message: String

    public var description: String { "\(message) at offset \(offset)" }
}

/// Parses the documented pattern dialect into a `RegexNode`. Recursive descent; nesting
/// depth is bounded so a hostile pattern cannot exhaust the stack.
struct RegexParser {
    static let maxRepeat = 1000
    static let maxNesting = 100

    private let pattern: [UInt8]
    private let caseless: Bool
    private let dotAll: Bool
    private var position = 0
    private var depth = 0
    private(set) var anchoredAtStart = false

    init(pattern: [UInt8], caseless: Bool, dotAll: Bool) {
        self.pattern = pattern
        self.caseless = caseless
        self.dotAll = dotAll
    }

    mutating func parse() throws(RegexSyntaxError) -> RegexNode {
        if peek == UInt8(ascii: "^") {
            anchoredAtStart = true
            position += 1
        }
        let node = try parseAlternation()
        if position < pattern.count {
            // Only an unbalanced ')' stops the top-level alternation early.
            throw invalid("unbalanced ')'")
        }
        return node
    }

    private var peek: UInt8? { position < pattern.count ? pattern[position] : nil }

    private func invalid(_ message: String, at offset: Int? = nil) -> RegexSyntaxError {
        RegexSyntaxError(kind: .invalid, offset: offset ?? position, message: message)
    }

    private func unsupported(_ message: String, at offset: Int? = nil) -> RegexSyntaxError {
        RegexSyntaxError(kind: .unsupported, offset: offset ?? position, message: message)
    }

    private mutating func parseAlternation() throws(RegexSyntaxError) -> RegexNode {
        var branches = [try parseConcatenation()]
        while peek == UInt8(ascii: "|") {
            position += 1
            branches.append(try parseConcatenation())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func parseConcatenation() throws(RegexSyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while let byte = peek, byte != UInt8(ascii: "|"), byte != UInt8(ascii: ")") {
            let atom = try parseAtom()
            items.append(try parseQuantifiers(on: atom))
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concatenation(items)
        }
    }

    private mutating func parseQuantifiers(on atom: RegexNode) throws(RegexSyntaxError) -> RegexNode {
        var node = atom
        // A quantifier may follow an atom, including a group whose body is itself repeated,
        // as in (?:b+){2}; only a second quantifier on the same atom (a**) is refused.
        var quantified = false
        while let byte = peek {
            let start = position
            let bounds: (Int, Int?)
            switch byte {
            case UInt8(ascii: "*"): bounds = (0, nil); position += 1
            case UInt8(ascii: "+"): bounds = (1, nil); position += 1
            case UInt8(ascii: "?"): bounds = (0, 1); position += 1
            case UInt8(ascii: "{"):
                guard let parsed = try parseBraces() else { return node }
                bounds = parsed
            default: return node
            }
            if quantified || node == .empty { throw invalid("nothing to repeat", at: start) }
            // A lazy marker changes nothing under earliest-end matching; accept it.
            if peek == UInt8(ascii: "?") { position += 1 }
            node = .repetition(node, min: bounds.0, max: bounds.1)
            quantified = true
        }
        return node
    }

    /// `{m}`, `{m,}`, `{m,n}`; returns nil (and consumes nothing) if the brace is a literal.
    private mutating func parseBraces() throws(RegexSyntaxError) -> (Int, Int?)? {
        let start = position
        position += 1
        guard let low = parseNumber() else {
            position = start
            return nil
        }
        var high: Int? = low
        if peek == UInt8(ascii: ",") {
            position += 1
            high = parseNumber()
        }
        guard peek == UInt8(ascii: "}") else {
            position = start
            return nil
        }
        position += 1
        if low > Self.maxRepeat || (high ?? 0) > Self.maxRepeat {
            throw invalid("repetition count above \(Self.maxRepeat)", at: start)
        }
        if let high, high < low { throw invalid("repetition {m,n} with n < m", at: start) }
        return (low, high)
    }

    private mutating func parseNumber() -> Int? {
        var value: Int?
        while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            value = min((value ?? 0) * 10 + Int(byte - UInt8(ascii: "0")), 1_000_000)
            position += 1
        }
        return value
    }

    private mutating func parseAtom() throws(RegexSyntaxError) -> RegexNode {
        let start = position
        let byte = pattern[position]
        position += 1
        switch byte {
        case UInt8(ascii: "("):
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maxNesting { throw invalid("groups nested too deeply", at: start) }
            if peek == UInt8(ascii: "?") {
                guard position + 1 < pattern.count, pattern[position + 1] == UInt8(ascii: ":") else {
                    throw unsupported("look-around and named groups are not supported", at: start)
                }
                position += 2
            }
            let inner = try parseAlternation()
            guard peek == UInt8(ascii: ")") else { throw invalid("missing ')'", at: start) }
            position += 1
            return inner
        case UInt8(ascii: "["):
            return .bytes(try parseClass(start: start))
        case UInt8(ascii: "."):
            return .bytes(dotAll ? .all : ByteSet(UInt8(ascii: "\n")).inverted())
        case UInt8(ascii: "\\"):
            return .bytes(try parseEscape())
        case UInt8(ascii: "^"):
            throw unsupported("'^' is only supported at the start of the pattern", at: start)
        case UInt8(ascii: "$"):
            throw unsupported("'$' is not supported (the end of a stream is unknown)", at: start)
        case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
            throw invalid("nothing to repeat", at: start)
        default:
            return .bytes(literal(byte))
        }
    }

    private func literal(_ byte: UInt8) -> ByteSet {
        caseless ? ByteSet(byte).caseFolded() : ByteSet(byte)
    }

    private mutating func parseClass(start: Int) throws(RegexSyntaxError) -> ByteSet {
        var set = ByteSet()
        var negated = false
        if peek == UInt8(ascii: "^") {
            negated = true
            position += 1
        }
        var first = true
        while true {
            guard let byte = peek else { throw invalid("missing ']'", at: start) }
            if byte == UInt8(ascii: "]"), !first { position += 1; break }
            first = false
            let low: ByteSet
            if byte == UInt8(ascii: "\\") {
                position += 1
                low = try parseEscape()
            } else {
                position += 1
                low = ByteSet(byte)
            }
            // A range needs single bytes on both sides: "a-z", "\x00-\x1f".
            if let lowByte = low.singleMember, peek == UInt8(ascii: "-"),
               position + 1 < pattern.count, pattern[position + 1] != UInt8(ascii: "]") {
                let dashAt = position
                position += 1
                let high: ByteSet
                if pattern[position] == UInt8(ascii: "\\") {
                    position += 1
                    high = try parseEscape()
                } else {
                    high = ByteSet(pattern[position])
                    position += 1
                }
                guard let highByte = high.singleMember, highByte >= lowByte else {
                    throw invalid("bad range in class", at: dashAt)
                }
                set.insert(range: lowByte...highByte)
            } else {
                set.formUnion(low)
            }
        }
        if caseless { set = set.caseFolded() }
        return negated ? set.inverted() : set
    }

    private mutating func parseEscape() throws(RegexSyntaxError) -> ByteSet {
        let start = position - 1
        guard let byte = peek else { throw invalid("pattern ends with '\\'", at: start) }
        position += 1
        switch byte {
        case UInt8(ascii: "n"): return ByteSet(0x0A)
        case UInt8(ascii: "r"): return ByteSet(0x0D)
        case UInt8(ascii: "t"): return ByteSet(0x09)
        case UInt8(ascii: "f"): return ByteSet(0x0C)
        case UInt8(ascii: "v"): return ByteSet(0x0B)
        case UInt8(ascii: "0"): return ByteSet(0x00)
        case UInt8(ascii: "d"): return .digits
        case UInt8(ascii: "D"): return ByteSet.digits.inverted()
        case UInt8(ascii: "w"): return .word
        case UInt8(ascii: "W"): return ByteSet.word.inverted()
        case UInt8(ascii: "s"): return .space
        case UInt8(ascii: "S"): return ByteSet.space.inverted()
        case UInt8(ascii: "x"):
            guard position + 1 < pattern.count,
                  let high = hexValue(pattern[position]), let low = hexValue(pattern[position + 1]) else {
                throw invalid("\\x needs two hex digits", at: start)
            }
            position += 2
            return literal(high << 4 | low)
        case UInt8(ascii: "b"), UInt8(ascii: "B"), UInt8(ascii: "A"), UInt8(ascii: "Z"), UInt8(ascii: "z"):
            throw unsupported("anchor '\\\(Character(UnicodeScalar(byte)))' is not supported", at: start)
        case UInt8(ascii: "1")...UInt8(ascii: "9"):
            throw unsupported("back-references are not supported", at: start)
        default:
            let isLetterOrDigit = ByteSet.word.contains(byte)
            if isLetterOrDigit {
                throw unsupported("unknown escape '\\\(Character(UnicodeScalar(byte)))'", at: start)
            }
            return literal(byte)
        }
    }

    private func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
