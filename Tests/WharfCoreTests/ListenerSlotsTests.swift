import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// A listening channel under `max_connections` (queue mode): each accepted connection takes
/// its slot before it goes on; past the share the rest of a burst waits, uncounted, and the
/// gate closes at once; freed slots let the waiting ones go on, in order, before the gate
/// opens again.
@Suite struct ListenerSlotsTests {
    final class Turns: @unchecked Sendable {
        var accepting: [Bool] = []
    }

    @Test func aBurstPastTheShareWaitsForFreedSlots() throws {
        let server = EmbeddedChannel()
        let limit = ConnectionLimit(maximum: 2, processes: 1, rejects: false)
        let gate = AcceptGate(paused: [])
        let turns = Turns()
        gate.attach(turning: { turns.accepting.append($0) })
        let slots = ListenerSlots(limit: limit, gate: gate)
        try server.pipeline.syncOperations.addHandler(slots)
        limit.attach(gate, on: server.embeddedEventLoop, held: slots)

        // One read of NIO's: three connections accepted at once.
        let children: [any Channel] = [EmbeddedChannel(), EmbeddedChannel(), EmbeddedChannel()]
        for child in children { try server.writeInbound(child) }
        server.embeddedEventLoop.run()
        var passed: [ObjectIdentifier] = []
        while let child = try server.readInbound(as: (any Channel).self) { passed.append(ObjectIdentifier(child)) }
        #expect(passed == children.prefix(2).map(ObjectIdentifier.init), "two go on")
        #expect(limit.active.load(ordering: .relaxed) == 2, "the third is not counted")
        #expect(turns.accepting == [false], "accepting stopped")

        limit.ended() // a connection ends: the waiting one takes its slot
        server.embeddedEventLoop.run()
        let third = try server.readInbound(as: (any Channel).self)
        #expect(third.map(ObjectIdentifier.init) == ObjectIdentifier(children[2]))
        #expect(limit.active.load(ordering: .relaxed) == 2)
        #expect(turns.accepting == [false], "still at the share: still paused")

        limit.ended()
        server.embeddedEventLoop.run()
        #expect(turns.accepting == [false, true], "below the share with nobody waiting: accepting again")
        _ = try server.finish()
    }

    @Test func waitingConnectionsCloseWithTheListener() throws {
        let server = EmbeddedChannel()
        let limit = ConnectionLimit(maximum: 1, processes: 1, rejects: false)
        let gate = AcceptGate(paused: [])
        let slots = ListenerSlots(limit: limit, gate: gate)
        try server.pipeline.syncOperations.addHandler(slots)
        limit.attach(gate, on: server.embeddedEventLoop, held: slots)
        let first = EmbeddedChannel(), waiting = EmbeddedChannel()
        try waiting.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try server.writeInbound(first as any Channel)
        try server.writeInbound(waiting as any Channel)
        #expect(waiting.isActive)
        _ = try server.finish()
        #expect(!waiting.isActive, "closed, never counted")
        #expect(limit.active.load(ordering: .relaxed) == 1)
    }
}
