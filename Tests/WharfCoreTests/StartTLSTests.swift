import CWharf
import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// start_tls is refused unless the stream is idle and the listener allows it (Tornado's
/// rule: no pending read, nothing buffered), without disturbing the stream.
@Suite struct StartTLSTests {
    static let ignoreResult: wharf_tls_cb = { _, _, _ in }

    @Test func needsAListenerWithStartTLS() throws {
        let stream = try StreamHarness()
        stream.run()
        #expect(api.start_tls(stream.handle, nil, Self.ignoreResult, nil) == WHARF_E_UNSUPPORTED)
        #expect(api.start_tls(stream.handle, nil, nil, nil) == WHARF_E_INVALID)
    }

    /// 1.3 names the refusal WHARF_E_NOT_IDLE; a plugin built against 1.2 still gets the
    /// WHARF_E_BUSY its header documented.
    @Test(arguments: [(UInt16(3), WHARF_E_NOT_IDLE), (UInt16(2), WHARF_E_BUSY)])
    func aPendingReadOrBufferedBytesMeanNotIdle(abiMinor: UInt16, refusal: Int32) throws {
        let stream = try StreamHarness(abiMinor: abiMinor)
        stream.run()
        #expect(stream.readUntil("\n") == WHARF_OK)
        #expect(api.start_tls(stream.handle, nil, Self.ignoreResult, nil) == refusal)
        try stream.feed("line\nmore")
        stream.run()
        #expect(stream.events == ["read:line\n"])
        #expect(api.start_tls(stream.handle, nil, Self.ignoreResult, nil) == refusal, "\"more\" is unread")
        #expect(stream.readUntil("\n") == WHARF_OK, "the stream still works")
    }

    @Test func aDeadHandleIsClosedAndNullIsInvalid() throws {
        let stream = try StreamHarness()
        stream.run()
        let handle = stream.handle
        #expect(api.abort(handle) == WHARF_OK)
        stream.run()
        #expect(api.start_tls(handle, nil, Self.ignoreResult, nil) == WHARF_E_CLOSED)
        #expect(api.start_tls(nil, nil, Self.ignoreResult, nil) == WHARF_E_INVALID)
    }
}
