/// A compiled byte pattern: a Thompson NFA, matched by `RegexMatcher` one chunk at a time.
///
/// Streaming simulation keeps the set of live NFA states between chunks, so each byte of a
/// stream is examined once, whatever the packet boundaries: no rescans, no backtracking,
/// and the result (the earliest match end) is the same for every split of the input.
public final class ByteRegex: Sendable {
    public static let caselessFlag: UInt32 = 1
    public static let dotAllFlag: UInt32 = 2
    static let maxInstructions = 20_000

    enum Instruction: Sendable {
        case match
        case consume(set: Int32, next: Int32)
        case split(Int32, Int32)
    }

    let instructions: [Instruction]
    let sets: [ByteSet]
    let start: Int32
    let anchoredAtStart: Bool
    /// Bytes that can begin a match; anything else is skipped while no match is in progress.
    let firstBytes: ByteSet

    public convenience init(pattern: String, flags: UInt32 = 0) throws(RegexSyntaxError) {
        try self.init(pattern: Array(pattern.utf8), flags: flags)
    }

    public init(pattern: [UInt8], flags: UInt32 = 0) throws(RegexSyntaxError) {
        var parser = RegexParser(pattern: pattern, caseless: flags & Self.caselessFlag != 0,
                                 dotAll: flags & Self.dotAllFlag != 0)
        let tree = try parser.parse()
        var compiler = Compiler()
        let matchState = compiler.append(.match)
        let start = try compiler.compile(tree, next: matchState)
        self.instructions = compiler.instructions
        self.sets = compiler.sets
        self.start = start
        self.anchoredAtStart = parser.anchoredAtStart

        var first = ByteSet()
        var visited = Set<Int32>()
        var stack = [start]
        while let state = stack.popLast() {
            guard visited.insert(state).inserted else { continue }
            switch compiler.instructions[Int(state)] {
            case .match: first = .all
            case let .consume(set, _): first.formUnion(compiler.sets[Int(set)])
            case let .split(a, b): stack.append(contentsOf: [a, b])
            }
        }
        self.firstBytes = first
    }

    private struct Compiler {
        var instructions: [Instruction] = []
        var sets: [ByteSet] = []
        private var setIndex: [ByteSet: Int32] = [:]

        mutating func append(_ instruction: Instruction) -> Int32 {
            instructions.append(instruction)
            return Int32(instructions.count - 1)
        }

        /// Compiles `node` so that it continues at `next`; returns its entry state.
        mutating func compile(_ node: RegexNode, next: Int32) throws(RegexSyntaxError) -> Int32 {
            if instructions.count > ByteRegex.maxInstructions {
                throw RegexSyntaxError(kind: .invalid, offset: 0,
                                       message: "pattern too large (over \(ByteRegex.maxInstructions) states)")
            }
            switch node {
            case .empty:
                return next
            case let .bytes(set):
                return append(.consume(set: internSet(set), next: next))
            case let .concatenation(items):
                var entry = next
                for item in items.reversed() { entry = try compile(item, next: entry) }
                return entry
            case let .alternation(branches):
                var entry = try compile(branches[branches.count - 1], next: next)
                for branch in branches.dropLast().reversed() {
                    let branchEntry = try compile(branch, next: next)
                    entry = append(.split(branchEntry, entry))
                }
                return entry
            case let .repetition(body, min, max):
                var entry: Int32
                if let max {
                    entry = next
                    for _ in 0..<(max - min) {
                        let bodyEntry = try compile(body, next: entry)
                        entry = append(.split(bodyEntry, next))
                    }
                } else {
                    let loop = append(.split(0, 0))
                    let bodyEntry = try compile(body, next: loop)
                    instructions[Int(loop)] = .split(bodyEntry, next)
                    entry = loop
                }
                for _ in 0..<min { entry = try compile(body, next: entry) }
                return entry
            }
        }

        private mutating func internSet(_ set: ByteSet) -> Int32 {
            if let index = setIndex[set] { return index }
            sets.append(set)
            let index = Int32(sets.count - 1)
            setIndex[set] = index
            return index
        }
    }
}

/// The live state of one streaming search. Feed it the bytes of a stream in order.
struct RegexMatcher {
    let regex: ByteRegex
    private var current: [Int32] = []
    private var next: [Int32] = []
    private var marks: [UInt32]
    private var stamp: UInt32 = 0
    private var started = false
    /// An anchored pattern whose threads all died: it can never match this stream.
    private var dead = false
    private var stack: [Int32] = []

    init(regex: ByteRegex) {
        self.regex = regex
        self.marks = Array(repeating: 0, count: regex.instructions.count)
    }

    /// Scans `bytes`, the continuation of everything scanned before. Returns how many of
    /// these bytes lead up to and include the earliest match end, or nil if no match ends
    /// within them.
    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if dead { return nil }
        // Work on local lists so the closure helper may mutate `self` (marks, stack).
        var current: [Int32] = []
        var next: [Int32] = []
        swap(&current, &self.current)
        swap(&next, &self.next)
        defer {
            swap(&current, &self.current)
            swap(&next, &self.next)
        }
        if !started {
            started = true
            newStep()
            if addClosure(regex.start, into: &current) { return 0 }
        }
        var index = 0
        let count = bytes.count
        while index < count {
            if current.isEmpty {
                if regex.anchoredAtStart {
                    dead = true
                    return nil
                }
                // Only the start state is live: skip bytes that cannot begin a match.
                while index < count, !regex.firstBytes.contains(bytes[index]) { index += 1 }
                if index == count { return nil }
                newStep()
                _ = addClosure(regex.start, into: &current)
            }
            let byte = bytes[index]
            newStep()
            next.removeAll(keepingCapacity: true)
            for state in current {
                guard case let .consume(set, target) = regex.instructions[Int(state)],
                      regex.sets[Int(set)].contains(byte) else { continue }
                if addClosure(target, into: &next) { return index + 1 }
            }
            swap(&current, &next)
            if !regex.anchoredAtStart, !current.isEmpty {
                // A match may also begin at the next byte; an empty `current` means the
                // same thing more cheaply (see the skip above).
                _ = addClosure(regex.start, into: &current)
            }
            index += 1
        }
        return nil
    }

    private mutating func newStep() {
        stamp &+= 1
        if stamp == 0 {
            for i in marks.indices { marks[i] = 0 }
            stamp = 1
        }
    }

    /// Adds the consuming states reachable from `state` without input; true if the match
    /// state is among them.
    private mutating func addClosure(_ state: Int32, into list: inout [Int32]) -> Bool {
        var matched = false
        stack.append(state)
        while let state = stack.popLast() {
            if marks[Int(state)] == stamp { continue }
            marks[Int(state)] = stamp
            switch regex.instructions[Int(state)] {
            case .match: matched = true
            case .consume: list.append(state)
            case let .split(a, b):
                stack.append(b)
                stack.append(a)
            }
        }
        return matched
    }
}
