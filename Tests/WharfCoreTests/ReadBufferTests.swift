import NIOCore
import Testing
@testable import WharfCore

@Suite struct ReadBufferTests {
    let token = CompletionToken(function: nil, context: nil)

    func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Takes every delivery the machine will make now, as strings; `stoppedWith` is the
    /// outcome that ended the run (a wait or a failure).
    func drain(_ machine: inout ReadBuffer, reissue request: ReadRequest? = nil,
               stoppedWith: UnsafeMutablePointer<ReadBuffer.Outcome>? = nil) -> [String] {
        var out: [String] = []
        while true {
            let outcome = machine.next()
            guard case .deliver(var data, _) = outcome else {
                stoppedWith?.pointee = outcome
                break
            }
            out.append(data.readString(length: data.readableBytes) ?? "")
            if let request { _ = machine.startRead(request) } else { break }
        }
        return out
    }

    @Test func readBytesWaitsForExactlyN() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        #expect(machine.startRead(.bytes(count: 5, partial: false)) == .started)
        machine.receive(bytes("abc"))
        #expect(machine.next() == .waitForData)
        machine.receive(bytes("defg"))
        #expect(drain(&machine) == ["abcde"])
        #expect(machine.bufferedBytes == 2)
    }

    @Test func partialReadsServeTheBufferInChunks() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        machine.receive(bytes(String(repeating: "x", count: 100)))
        _ = machine.startRead(.bytes(count: 20, partial: true))
        let chunks = drain(&machine, reissue: .bytes(count: 20, partial: true))
        #expect(chunks.count == 5)
        #expect(chunks.allSatisfy { $0.count == 20 })
    }

    @Test func partialReadOfMoreThanBufferedReturnsWhatIsThere() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.bytes(count: 20, partial: true))
        #expect(machine.next() == .waitForData)
        machine.receive(bytes("over"))
        #expect(drain(&machine) == ["over"])
    }

    @Test func zeroByteReadCompletesEmpty() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.bytes(count: 0, partial: false))
        #expect(machine.next() == .deliver(ByteBuffer(), token))
    }

    @Test func delimiterSplitAcrossChunksIsFound() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.until(delimiter: Array("\r\n".utf8), maxBytes: 0))
        machine.receive(bytes("ab\r"))
        #expect(machine.next() == .waitForData)
        machine.receive(bytes("\ncd"))
        #expect(drain(&machine) == ["ab\r\n"])
        #expect(machine.bufferedBytes == 2)
    }

    @Test func messageFedByteByByte() {
        let message = "hello\r\n\r\n"
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.until(delimiter: Array("\r\n\r\n".utf8), maxBytes: 100))
        var delivered: [String] = []
        for character in message {
            machine.receive(bytes(String(character)))
            delivered += drain(&machine)
        }
        #expect(delivered == [message])
    }

    @Test func manyMessagesInOneSegment() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        let request = ReadRequest.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 0)
        machine.receive(bytes("a\nbb\nccc\npartial"))
        _ = machine.startRead(request)
        #expect(drain(&machine, reissue: request) == ["a\n", "bb\n", "ccc\n"])
        #expect(machine.next() == .waitForData)
        #expect(machine.bufferedBytes == 7)
    }

    @Test func maxBytesCountsTheDelimiter() {
        let limit = ReadRequest.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 5)
        var exact = ReadBuffer(maxBufferSize: 1024)
        exact.receive(bytes("abcd\n"))
        _ = exact.startRead(limit)
        #expect(drain(&exact) == ["abcd\n"], "a result of exactly max_bytes is fine")

        var over = ReadBuffer(maxBufferSize: 1024)
        over.receive(bytes("abcde\n"))
        _ = over.startRead(limit)
        #expect(over.next() == .fail(.limitExceeded, token), "delimiter past the limit, same packet")

        var waiting = ReadBuffer(maxBufferSize: 1024)
        waiting.receive(bytes("abcde"))
        _ = waiting.startRead(limit)
        #expect(waiting.next() == .waitForData, "exactly max_bytes without a delimiter waits")
        waiting.receive(bytes("f"))
        #expect(waiting.next() == .fail(.limitExceeded, token))
    }

    @Test func earlierPipelinedMessagesAreServedBeforeTheLimit() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        let request = ReadRequest.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 4)
        machine.receive(bytes("ab\nxxxxxxxx"))
        _ = machine.startRead(request)
        var last = ReadBuffer.Outcome.waitForData
        #expect(drain(&machine, reissue: request, stoppedWith: &last) == ["ab\n"])
        #expect(last == .fail(.limitExceeded, token))
    }

    @Test func regexReadsResumeAcrossChunks() throws {
        var machine = ReadBuffer(maxBufferSize: 1024)
        let regex = try ByteRegex(pattern: "\\r?\\n\\r?\\n")
        _ = machine.startRead(.untilRegex(regex, maxBytes: 64))
        machine.receive(bytes("header: 1\r\n"))
        #expect(machine.next() == .waitForData)
        machine.receive(bytes("\r\nbody"))
        #expect(drain(&machine) == ["header: 1\r\n\r\n"])
    }

    @Test func regexReadRespectsMaxBytes() throws {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.untilRegex(try ByteRegex(pattern: ";"), maxBytes: 3))
        machine.receive(bytes("abc;"))
        #expect(machine.next() == .fail(.limitExceeded, token))
    }

    @Test func bufferFullFailsAnUnsatisfiableRead() {
        var machine = ReadBuffer(maxBufferSize: 10)
        _ = machine.startRead(.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 0))
        machine.receive(bytes("123456789"))
        #expect(machine.next() == .waitForData)
        #expect(machine.wantsSocketRead)
        machine.receive(bytes("0"))
        #expect(!machine.wantsSocketRead, "no reading past max_buffer_size")
        #expect(machine.next() == .fail(.bufferFull, token))
    }

    @Test func socketDemandFollowsTornado() {
        var machine = ReadBuffer(maxBufferSize: 100)
        #expect(machine.wantsSocketRead, "idle and empty: read to notice a peer close")
        machine.receive(bytes("x"))
        #expect(!machine.wantsSocketRead, "idle with data buffered: leave the rest in the kernel")
        _ = machine.startRead(.bytes(count: 5, partial: false))
        #expect(machine.wantsSocketRead, "a pending read wants more")
        machine.endOfInput()
        #expect(!machine.wantsSocketRead)
    }

    @Test func endOfInputStillServesBufferedMessages() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        let request = ReadRequest.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 0)
        machine.receive(bytes("a\nb\ntail"))
        machine.endOfInput()
        _ = machine.startRead(request)
        var last = ReadBuffer.Outcome.waitForData
        #expect(drain(&machine, reissue: request, stoppedWith: &last) == ["a\n", "b\n"])
        #expect(last == .fail(.closed, token), "the incomplete tail cannot be satisfied")
    }

    @Test func readUntilCloseGetsEverythingAtEndOfInput() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.untilClose(maxBytes: 0))
        machine.receive(bytes("one "))
        machine.receive(bytes("two"))
        #expect(machine.next() == .waitForData)
        machine.endOfInput()
        #expect(drain(&machine) == ["one two"])
    }

    @Test func readUntilCloseKeepsDataOnResetButNotOnOtherErrors() {
        var reset = ReadBuffer(maxBufferSize: 1024)
        _ = reset.startRead(.untilClose(maxBytes: 0))
        reset.receive(bytes("partial"))
        reset.closeReads(reason: .connectionReset)
        #expect(drain(&reset) == ["partial"])

        var overflow = ReadBuffer(maxBufferSize: 1024)
        _ = overflow.startRead(.untilClose(maxBytes: 0))
        overflow.receive(bytes("partial"))
        overflow.closeReads(reason: .bufferFull)
        #expect(overflow.next() == .fail(.bufferFull, token))
    }

    @Test func readUntilCloseHonoursMaxBytes() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.untilClose(maxBytes: 4))
        machine.receive(bytes("12345"))
        #expect(machine.next() == .fail(.limitExceeded, token))
    }

    @Test func oneReadAtATime() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        #expect(machine.startRead(.bytes(count: 1, partial: false)) == .started)
        #expect(machine.startRead(.bytes(count: 1, partial: false)) == .rejected(.busy))
    }

    @Test func closingCompletesASatisfiableReadThenRefusesNewOnes() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        machine.receive(bytes("line\nrest"))
        _ = machine.startRead(.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 0))
        machine.closeReads(reason: nil)
        #expect(drain(&machine) == ["line\n"])
        #expect(machine.startRead(.bytes(count: 1, partial: true)) == .rejected(.closed))
    }

    @Test func pendingReadFailsWithTheCloseReason() {
        var machine = ReadBuffer(maxBufferSize: 1024)
        _ = machine.startRead(.bytes(count: 10, partial: false))
        machine.closeReads(reason: .connectionReset)
        #expect(machine.next() == .fail(.connectionReset, token))
    }

    @Test func releasesTheBufferWhenEmptyAndCompactsSmallRemainders() {
        var machine = ReadBuffer(maxBufferSize: 1 << 20)
        var chunk = ByteBufferAllocator().buffer(capacity: 65536)
        chunk.writeString("abc\nd")
        machine.receive(chunk)
        _ = machine.startRead(.until(delimiter: [UInt8(ascii: "\n")], maxBytes: 0))
        #expect(drain(&machine) == ["abc\n"])
        #expect(machine.bufferCapacity >= 65536)
        machine.compactIfWasteful()
        #expect(machine.bufferedBytes == 1)
        #expect(machine.bufferCapacity < 4096, "one leftover byte must not pin a 64 KiB chunk")
        _ = machine.startRead(.bytes(count: 1, partial: false))
        #expect(drain(&machine) == ["d"])
        #expect(machine.bufferCapacity == 0, "an empty buffer is released")
    }

    @Test func delimiterSearchFindsNeedles() {
        func find(_ needle: String, _ haystack: String) -> Int? {
            Array(needle.utf8).withUnsafeBytes { n in
                Array(haystack.utf8).withUnsafeBytes { h in ReadBuffer.firstIndex(of: n, in: h) }
            }
        }
        #expect(find("\r\n\r\n", "a\r\n\r\r\n\r\nb") == 4)
        #expect(find("abc", "ababc") == 2)
        #expect(find("abc", "ab") == nil)
        #expect(find("x", "") == nil)
    }
}
