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
        #expect(largest.token(side: 1) < PumpPreambles.tag)
        #expect(PumpPreambles.tag < PumpListeners.tag)
        #expect((PumpedPair.generationMask + 1) & PumpedPair.generationMask == 0, "generations wrap inside the mask")
    }

    /// A preamble's token names its slot and generation under its own tag, so an event for
    /// a preamble that ended (its slot reused) finds nothing.
    @Test func aPreambleTokenFindsOnlyItsOwnPreamble() {
        var table = PumpPreambles()
        let first = PumpPreamble(fd: 1, proxyHeader: true, session: nil, owner: PumpPreambleTests.Nobody())
        table.add(first)
        let token = first.token
        #expect(token >= PumpPreambles.tag && token < PumpListeners.tag)
        #expect(table.preamble(token: token) === first)
        table.remove(first)
        #expect(table.preamble(token: token) == nil)
        let second = PumpPreamble(fd: 2, proxyHeader: true, session: nil, owner: PumpPreambleTests.Nobody())
        table.add(second)
        #expect(second.slot == 0, "the slot is reused")
        #expect(table.preamble(token: token) == nil, "an old token does not name the new preamble")
        #expect(table.preamble(token: second.token) === second)
    }
}
