/// A set of byte values, as a 256-bit map.
struct ByteSet: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    static let all: ByteSet = {
        var set = ByteSet()
        set.insert(range: 0...255)
        return set
    }()

    init() {}

    init(_ byte: UInt8) { insert(byte) }

    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    mutating func insert(range: ClosedRange<UInt8>) {
        for byte in range { insert(byte) }
    }

    mutating func formUnion(_ other: ByteSet) {
        words.0 |= other.words.0
        words.1 |= other.words.1
        words.2 |= other.words.2
        words.3 |= other.words.3
    }

    func inverted() -> ByteSet {
        var set = ByteSet()
        set.words = (~words.0, ~words.1, ~words.2, ~words.3)
        return set
    }

    /// Adds the other ASCII case of every letter in the set.
    func caseFolded() -> ByteSet {
        var set = self
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") where contains(byte) { set.insert(byte + 32) }
        for byte in UInt8(ascii: "a")...UInt8(ascii: "z") where contains(byte) { set.insert(byte - 32) }
        return set
    }

    var count: Int {
        words.0.nonzeroBitCount + words.1.nonzeroBitCount + words.2.nonzeroBitCount + words.3.nonzeroBitCount
    }

    /// The only member, when the set has exactly one.
    var singleMember: UInt8? {
        guard count == 1 else { return nil }
        return (0...255).lazy.map { UInt8($0) }.first(where: contains)
    }

    static func == (lhs: ByteSet, rhs: ByteSet) -> Bool {
        lhs.words == rhs.words
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    static let digits: ByteSet = {
        var set = ByteSet()
        set.insert(range: UInt8(ascii: "0")...UInt8(ascii: "9"))
        return set
    }()

    static let word: ByteSet = {
        var set = digits
        set.insert(range: UInt8(ascii: "a")...UInt8(ascii: "z"))
        set.insert(range: UInt8(ascii: "A")...UInt8(ascii: "Z"))
        set.insert(UInt8(ascii: "_"))
        return set
    }()

    static let space: ByteSet = {
        var set = ByteSet()
        for byte in [0x20, 0x09, 0x0A, 0x0D, 0x0C, 0x0B] as [UInt8] { set.insert(byte) }
        return set
    }()
}
