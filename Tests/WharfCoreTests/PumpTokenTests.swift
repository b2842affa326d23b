import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// A pumped pair's epoll tokens carry its slot, its side and its generation, so an event
/// from an ended pair's socket (still open until the loop closes it) is told apart from one
/// of the pair that took its slot since.
struct PumpTokenTests {
    final class Owner: PumpPairOwner {
        let eventLoop: any EventLoop = EmbeddedEventLoop()
        func pumpConnected() {}
        func pumpFinished(_ outcome: PumpOutcome) {}
    }

    static func pair(slot: Int, generation: UInt64) -> PumpedPair {
        let pair = PumpedPair(fdA: 1, fdB: 2, owner: Owner(), idleTimeoutNanos: 0, closeLingerNanos: 0)
        pair.slot = slot
        pair.generation = generation
        return pair
    }

    @Test func aTokenNamesSlotSideAndGeneration() {
        let pair = Self.pair(slot: 1_000_000, generation: 12_345)
        for side in 0...1 {
            let token = pair.token(side: side)
            #expect(PumpedPair.slot(of: token) == 1_000_000)
            #expect(Int(token & 1) == side)
            #expect(PumpedPair.generation(of: token) == 12_345)
        }
    }

    @Test func theSameSlotInALaterGenerationIsAnotherToken() {
        let ended = Self.pair(slot: 3, generation: 7)
        let successor = Self.pair(slot: 3, generation: 8)
        #expect(ended.token(side: 0) != successor.token(side: 0))
        #expect(PumpedPair.generation(of: ended.token(side: 0)) != successor.generation)
    }

    @Test func everyPairTokenStaysBelowTheHandshakeAndListenerTags() {
        let largest = Self.pair(slot: Int(Int32.max) / 2, generation: PumpedPair.generationMask)
        #expect(largest.token(side: 1) < PumpHandshakes.tag)
        #expect(PumpHandshakes.tag < PumpListeners.tag)
        #expect((PumpedPair.generationMask + 1) & PumpedPair.generationMask == 0, "generations wrap inside the mask")
    }

    /// A TLS handshake's token names its slot and generation under its own tag, so an event
    /// for a handshake that ended (its slot reused) finds nothing.
    @Test func aHandshakeTokenFindsOnlyItsOwnHandshake() throws {
        final class Nobody: PumpHandshakeOwner {
            func pumpHandshakeFinished(_ handshake: PumpHandshake, _ failure: StreamError?) {}
        }
        let tls = try TestTLS.serverTLS()
        var table = PumpHandshakes()
        let first = PumpHandshake(fd: 1, session: try #require(PumpTLSSession(tls, fd: 1)), owner: Nobody())
        table.add(first)
        let token = first.token
        #expect(token >= PumpHandshakes.tag && token < PumpListeners.tag)
        #expect(table.handshake(token: token) === first)
        table.remove(first)
        #expect(table.handshake(token: token) == nil)
        let second = PumpHandshake(fd: 2, session: try #require(PumpTLSSession(tls, fd: 2)), owner: Nobody())
        table.add(second)
        #expect(second.slot == 0, "the slot is reused")
        #expect(table.handshake(token: token) == nil, "an old token does not name the new handshake")
        #expect(table.handshake(token: second.token) === second)
    }
}
