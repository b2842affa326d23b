/// Reads a fuzzer's bytes as a sequence of small decisions, so one input describes a whole
/// scenario (a pattern and its input, a list of events). Past the end, every read is 0.
struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isExhausted: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return offset < bytes.count ? bytes[offset] : 0
    }

    /// 0 ..< bound (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(byte()) % bound }

    mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `limit` raw bytes.
    mutating func bytes(upTo limit: Int) -> [UInt8] {
        let count = below(limit + 1)
        return (0..<count).map { _ in byte() }
    }

    /// Bytes drawn from a small alphabet, so delimiters and patterns actually occur.
    mutating func text(upTo limit: Int, alphabet: [UInt8] = Array("ab\n\r x".utf8)) -> [UInt8] {
        let count = below(limit + 1)
        return (0..<count).map { _ in alphabet[below(alphabet.count)] }
    }
}

/// What a check found: a property the code under test broke on this input.
struct FuzzFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A deterministic generator for the regression tests' random inputs (xorshift64*).
struct SeededBytes {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next(count: Int) -> [UInt8] {
        (0..<count).map { _ in
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return UInt8(truncatingIfNeeded: (state &* 0x2545_F491_4F6C_DD1D) >> 56)
        }
    }
}
