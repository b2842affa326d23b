import NIOCore
@testable import WharfCore

/// The stream's lifecycle machine under random event sequences, driven the way
/// `IOStreamHandler` drives it, against a simple reference model of the read side (a byte
/// array searched from scratch each time) and the machine's own promises:
/// - every started read completes exactly once (delivered, failed, or timed out), and none
///   is left when the close notification runs, which happens once;
/// - a delivery is exactly what the reference reads from the same bytes, and bytes are never
///   lost, duplicated or reordered;
/// - after a timer turn the next deadline lies in the future (a timer that fired and
///   re-armed in the past would spin the loop);
/// - a finished stream does nothing more.
struct StreamMachineCheck {
    static let limits = StreamTimeouts(idle: .milliseconds(1000), read: .milliseconds(500),
                                       lifetime: .milliseconds(4000), handshake: .milliseconds(200),
                                       closeLinger: .milliseconds(400))
    static let maxBuffer = 24

    var machine: StreamStateMachine
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    /// The reference: bytes received and not yet delivered, and the pending read.
    var buffer: [UInt8] = []
    var pending: (request: ReadRequest, id: Int)?
    var delivered: [UInt8] = []
    var received: [UInt8] = []
    var nextToken = 1
    var finished = false

    static func run(_ data: [UInt8]) throws(FuzzFailure) {
        var check = StreamMachineCheck()
        var input = FuzzInput(data)
        var steps = 0
        while !input.isExhausted, steps < 200 {
            try check.step(&input)
            steps += 1
        }
        try check.end()
    }

    init() {
        machine = StreamStateMachine(awaiting: [], maxBufferSize: Self.maxBuffer, timeouts: Self.limits, now: now)
        _ = machine.activate(now: now)
    }

    mutating func step(_ input: inout FuzzInput) throws(FuzzFailure) {
        switch input.below(9) {
        case 0, 1:
            let chunk = input.text(upTo: 8)
            guard !chunk.isEmpty else { return }
            if machine.state == .open || machine.state == .closing {
                buffer += chunk
                received += chunk
            }
            if machine.received(ByteBuffer(bytes: chunk), now: now) == .serviceRead { try service() }
        case 2: try startRead(&input)
        case 3: try service()
        case 4:
            if machine.inputClosed() == .serviceRead { try service() }
        case 5: try close(reason: nil, graceful: input.bool())
        case 6:
            now = now + .milliseconds(Int64(50 * (1 + input.below(12))))
            try timers()
        case 7: _ = machine.setReadTimeout(input.bool() ? .milliseconds(300) : nil)
        default: try channelGone()
        }
        if finished, machine.shouldRequestSocketRead(partnerWritable: true) {
            throw FuzzFailure("a finished stream asked to read")
        }
    }

    mutating func startRead(_ input: inout FuzzInput) throws(FuzzFailure) {
        let request: ReadRequest
        switch input.below(3) {
        case 0: request = .bytes(count: input.below(7), partial: input.bool())
        case 1: request = .until(delimiter: input.bool() ? [10] : [13, 10], maxBytes: input.bool() ? 0 : 1 + input.below(10))
        default: request = .untilClose(maxBytes: input.bool() ? 0 : 1 + input.below(20))
        }
        let id = nextToken
        let token = CompletionToken(function: nil, context: UnsafeMutableRawPointer(bitPattern: id))
        let refusal = machine.startRead(request, token: token, now: now)
        if refusal == nil {
            guard pending == nil, !finished else { throw FuzzFailure("a second read was accepted") }
            pending = (request, id)
            nextToken += 1
            if machine.readStartedAction() == .serviceRead { try service() }
        } else if pending == nil, machine.state == .open {
            throw FuzzFailure("a read on an open, idle stream was refused: \(refusal!)")
        }
    }

    mutating func service() throws(FuzzFailure) {
        let expected = pending.map { reference($0.request) }
        switch machine.serviceRead(now: now) {
        case .none:
            if let expected, expected != .waitForData, !finished {
                throw FuzzFailure("machine waits; reference says \(expected) for \(pending!.request) on \(buffer)")
            }
        case let .deliver(bytes, token):
            try complete(token)
            let got = Array(buffer: bytes)
            guard expected == .deliver(got.count), Array(buffer.prefix(got.count)) == got else {
                throw FuzzFailure("machine delivered \(got); reference \(String(describing: expected)) on \(buffer)")
            }
            buffer.removeFirst(got.count)
            delivered += got
        case let .fail(error, token, closeReason):
            try complete(token)
            guard case .fail = expected else {
                throw FuzzFailure("machine failed \(error); reference \(String(describing: expected)) on \(buffer)")
            }
            try close(reason: closeReason, graceful: true)
        }
    }

    mutating func close(reason: StreamError?, graceful: Bool) throws(FuzzFailure) {
        switch machine.close(reason: reason, graceful: graceful, now: now) {
        case let .closeWhenFlushed(serviceRead), let .closeNow(_, serviceRead):
            if serviceRead { try service() }
        case .none, .forwardToRelay:
            break
        }
    }

    mutating func timers() throws(FuzzFailure) {
        var turns = 0
        while true {
            turns += 1
            guard turns < 20 else { throw FuzzFailure("the timer keeps acting at one instant") }
            switch machine.timerFired(now: now) {
            case .none:
                if let next = machine.nextDeadline, next <= now {
                    throw FuzzFailure("after a timer turn the next deadline is not in the future")
                }
                return
            case .abandon:
                throw FuzzFailure("an open stream was abandoned")
            case let .close(reason, graceful, _):
                try close(reason: reason, graceful: graceful)
            case let .failRead(token):
                try complete(token)
            }
        }
    }

    mutating func channelGone() throws(FuzzFailure) {
        guard case let .closed(serviceRead, _, _) = machine.channelInactive() else { return }
        if serviceRead { try service() }
        guard let (_, leftover) = machine.finish() else { throw FuzzFailure("no close notification") }
        if let leftover { try complete(leftover) }
        if pending != nil { throw FuzzFailure("a read was left unresolved at the close notification") }
        if machine.finish() != nil { throw FuzzFailure("a second close notification") }
        finished = true
    }

    mutating func end() throws(FuzzFailure) {
        if !finished { try channelGone() }
        guard delivered + buffer == received else { throw FuzzFailure("bytes lost, duplicated or reordered") }
    }

    mutating func complete(_ token: CompletionToken) throws(FuzzFailure) {
        let id = Int(bitPattern: token.context)
        guard let current = pending, current.id == id else {
            throw FuzzFailure("read \(id) completed, but the pending read is \(String(describing: pending?.id))")
        }
        pending = nil
    }

    enum Expected: Equatable {
        case deliver(Int)
        case fail
        case waitForData
    }

    /// The read side's rules, from scratch on the whole buffer (Tornado's semantics).
    func reference(_ request: ReadRequest) -> Expected {
        let closed = machine.reads.readsClosed
        let reason = machine.reads.closeReason
        let ended = machine.reads.inputEnded
        switch request {
        case let .bytes(count, partial):
            if count == 0 { return .deliver(0) }
            if partial, !buffer.isEmpty { return .deliver(min(count, buffer.count)) }
            if buffer.count >= count { return .deliver(count) }
        case let .until(delimiter, maxBytes):
            if let end = Self.firstEnd(of: delimiter, in: buffer) {
                return maxBytes == 0 || end <= maxBytes ? .deliver(end) : .fail
            }
            if maxBytes > 0, buffer.count > maxBytes { return .fail }
        case let .untilClose(maxBytes):
            if maxBytes > 0, buffer.count > maxBytes { return .fail }
            if ended || (closed && reason == nil) || reason == .connectionReset { return .deliver(buffer.count) }
        case .untilRegex:
            return .waitForData
        }
        if closed || ended || buffer.count >= Self.maxBuffer { return .fail }
        return .waitForData
    }

    static func firstEnd(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where Array(haystack[start..<start + needle.count]) == needle {
            return start + needle.count
        }
        return nil
    }
}
