import Testing
@testable import WharfCore

@Suite struct ByteRegexTests {
    /// The earliest match end in `input`, scanned in one piece.
    func end(_ pattern: String, _ input: [UInt8], flags: UInt32 = 0) throws -> Int? {
        var matcher = RegexMatcher(regex: try ByteRegex(pattern: pattern, flags: flags))
        return input.withUnsafeBytes { matcher.scan($0) }
    }

    func end(_ pattern: String, _ input: String, flags: UInt32 = 0) throws -> Int? {
        try end(pattern, Array(input.utf8), flags: flags)
    }

    @Test func delimiterLikePatterns() throws {
        #expect(try end("\\r?\\n", "abc\r\nxyz") == 5)
        #expect(try end("\\r?\\n", "abc\nxyz") == 4)
        #expect(try end("\\n\\n|\\r\\n\\r\\n", "head\r\nx: y\r\n\r\nbody") == 14)
        #expect(try end("[0-9]+;", "x12;rest") == 4)
        #expect(try end("END", "no terminator here") == nil)
    }

    @Test func completesAtTheEarliestMatchEnd() throws {
        #expect(try end("a+", "aaab") == 1)
        #expect(try end("x{2,3}y", "xxxxy") == 5)
        #expect(try end("ab|b", "xab") == 3)
        #expect(try end("(?:ab)+c", "abababc") == 7)
    }

    /// Found by fuzzing: a group whose body is itself repeated was refused ("nothing to
    /// repeat") when quantified again; only a second quantifier on one atom is an error.
    @Test func aRepeatedGroupMayRepeatAgain() throws {
        #expect(try end("(?:(?:b)+){2,3}?c", "xbbbc") == 5)
        #expect(try end("(?:a*)+b", "aab") == 3)
        #expect(try end("(?:a|b+)*c", "abbac") == 5)
        #expect(throws: RegexSyntaxError.self) { try ByteRegex(pattern: "a**") }
        #expect(throws: RegexSyntaxError.self) { try ByteRegex(pattern: "(?:a)+{2}") }
    }

    @Test func matchesBytesNotText() throws {
        #expect(try end("\\x00\\xff", [1, 0, 0xFF, 2]) == 3)
        #expect(try end("\\0", [7, 7, 0, 7]) == 3)
        #expect(try end("[\\x80-\\xff]+!", [0x41, 0xC3, 0x28, 0x21]) == nil, "0x28 breaks the run")
        #expect(try end("[\\x80-\\xff]+!", [0x41, 0xC3, 0xFE, 0x21]) == 4)
        #expect(try end("a.b", [0x61, 0x00, 0x62]) == 3, "NUL is an ordinary byte for '.'")
    }

    @Test func classesEscapesAndFlags() throws {
        #expect(try end("\\d\\d:\\d\\d", "at 12:34") == 8)
        #expect(try end("\\w+\\s", "hello world") == 6)
        #expect(try end("[^a-z]", "abcD") == 4)
        #expect(try end("[]x]", "ab]") == 3, "a leading ] is literal")
        #expect(try end("end", "xEnD", flags: ByteRegex.caselessFlag) == 4)
        #expect(try end("end", "xEnD") == nil)
        #expect(try end("a.c", "a\nc") == nil)
        #expect(try end("a.c", "a\nc", flags: ByteRegex.dotAllFlag) == 3)
        #expect(try end("\\.\\*", "a.*b") == 3)
        #expect(try end("a{2}", "aaa") == 2)
        #expect(try end("ab{,", "ab{,") == 4, "a brace that is not a bound is literal")
    }

    @Test func caretAnchorsAtTheFirstUnreadByte() throws {
        #expect(try end("^ab", "abc") == 2)
        #expect(try end("^ab", "xab") == nil)
    }

    @Test func emptyMatchCompletesAtOnce() throws {
        #expect(try end("a*", "bbb") == 0)
    }

    @Test func resultDoesNotDependOnHowTheInputIsSplit() throws {
        let cases: [(String, String)] = [
            ("\\r\\n\\r\\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"),
            ("(?:ab|abc)d", "xxabcabcdzz"),
            ("[0-9]{3}-[0-9]{2}", "phone 12-345-67 ok"),
            ("a+b", "caaaab"),
        ]
        for (pattern, input) in cases {
            let bytes = Array(input.utf8)
            let whole = try end(pattern, bytes)
            let regex = try ByteRegex(pattern: pattern)
            for split in 0...bytes.count {
                var matcher = RegexMatcher(regex: regex)
                let first = bytes[..<split].withUnsafeBytes { matcher.scan($0) }
                let result = first ?? bytes[split...].withUnsafeBytes { matcher.scan($0) }.map { split + $0 }
                #expect(result == whole, "pattern \(pattern) split at \(split)")
            }
            var matcher = RegexMatcher(regex: regex)
            var byteByByte: Int?
            for (index, byte) in bytes.enumerated() where byteByByte == nil {
                byteByByte = [byte].withUnsafeBytes { matcher.scan($0) }.map { index + $0 }
            }
            #expect(byteByByte == whole, "pattern \(pattern) fed byte by byte")
        }
    }

    @Test func longInputsScanLinearly() throws {
        // A pathological pattern for backtracking engines: must finish instantly here.
        var input = [UInt8](repeating: UInt8(ascii: "a"), count: 200_000)
        input.append(UInt8(ascii: "!"))
        #expect(try end("(a|aa)+!", input) == input.count)
    }

    @Test(arguments: [
        ("a$", RegexSyntaxError.Kind.unsupported, 1),
        ("(?=a)", .unsupported, 0),
        ("(a)\\1", .unsupported, 3),
        ("\\bword", .unsupported, 0),
        ("a{1001}", .invalid, 1),
        ("(ab", .invalid, 0),
        ("ab)", .invalid, 2),
        ("*a", .invalid, 0),
        ("[a-", .invalid, 0),
        ("[z-a]", .invalid, 2),
        ("\\xZZ", .invalid, 0),
        ("a^", .unsupported, 1),
    ])
    func rejectsWhatTheDialectDoesNotHave(pattern: String, kind: RegexSyntaxError.Kind, offset: Int) {
        #expect(throws: RegexSyntaxError.self) { try ByteRegex(pattern: pattern) }
        do {
            _ = try ByteRegex(pattern: pattern)
        } catch {
            #expect(error.kind == kind, "\(pattern): \(error)")
            #expect(error.offset == offset, "\(pattern): \(error)")
        }
    }

    @Test func boundsPatternSize() {
        #expect(throws: RegexSyntaxError.self) { try ByteRegex(pattern: "(a{1000}){1000}") }
    }
}
