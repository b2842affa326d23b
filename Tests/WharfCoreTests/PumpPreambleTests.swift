import CWharfLinux
import NIOCore
import Testing
@testable import WharfCore

#if canImport(Glibc)
import Glibc
#endif

/// The PROXY header a relay pump reads before the stream opens, on a real socket pair: it
/// takes the header exactly and leaves what follows for TLS or the plugin.
struct PumpPreambleTests {
    final class Nobody: PumpPreambleOwner {
        func pumpPreambleFinished(_ preamble: PumpPreamble, _ failure: StreamError?) {}
    }

    /// A preamble reading the first end of a non-blocking socket pair; the second is the peer's.
    final class Pair {
        let ends: [CInt]
        let preamble: PumpPreamble
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

        init() {
            var ends: [CInt] = [-1, -1]
            _ = socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0, &ends)
            self.ends = ends
            preamble = PumpPreamble(fd: ends[0], proxyHeader: true, session: nil, owner: Nobody())
        }

        deinit {
            scratch.deallocate()
            ends.forEach { _ = close($0) }
        }

        func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) } }
        func step() -> PumpPreamble.Step { preamble.step(scratch: scratch) }

        /// What is left on the preamble's end after it (the bytes the plugin or TLS will read).
        func rest() -> String {
            let count = read(ends[0], scratch.baseAddress, scratch.count)
            return count > 0 ? String(decoding: UnsafeRawBufferPointer(start: scratch.baseAddress, count: count), as: UTF8.self) : ""
        }
    }

    @Test func aWholeHeaderIsTakenExactly() throws {
        let pair = Pair()
        pair.send("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.0\r\n")
        #expect(pair.step() == .done)
        #expect(pair.preamble.proxied?.source == (try SocketAddress(ipAddress: "192.0.2.1", port: 56324)))
        #expect(pair.preamble.proxied?.destination?.port == 443)
        #expect(pair.rest() == "GET / HTTP/1.0\r\n", "what follows the header stays in the socket")
    }

    @Test func aHeaderInPiecesWaitsForTheRest() {
        let pair = Pair()
        #expect(pair.step() == .waiting, "nothing yet")
        pair.send("PROXY TCP4 192.0.2.1 198.")
        #expect(pair.step() == .waiting)
        pair.send("51.100.2 56324 443\r\nhi")
        #expect(pair.step() == .done)
        #expect(pair.rest() == "hi")
    }

    @Test func aMalformedHeaderFailsWithItsReason() {
        let pair = Pair()
        pair.send("GET / HTTP/1.1\r\n\r\n")
        #expect(pair.step() == .failed(.io))
        #expect(pair.preamble.failureDetail is ProxyProtocolError)
        #expect("\(pair.preamble.failureDetail!)".contains("no PROXY protocol header"))
    }

    @Test func aPeerThatLeavesInsideTheHeaderFails() {
        let pair = Pair()
        pair.send("PROXY TCP4 ")
        #expect(pair.step() == .waiting, "the bytes so far could still become a header")
        shutdown(pair.ends[1], CInt(SHUT_WR))
        pair.preamble.note(EPOLLIN.rawValue | EPOLLRDHUP.rawValue) // as the pump's epoll reports the FIN
        #expect(pair.step() == .failed(.io))
        #expect("\(pair.preamble.failureDetail!)".contains("ended inside the PROXY header"))
    }
}
