import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// The loop's deadline wheel on a virtual clock: never early, at most a tick late, across
/// revolutions, with removal and moves in O(1).
@Suite struct DeadlineWheelTests {
    final class Owner: DeadlineOwner {
        var wheelSlot: DeadlineWheel.Slot?
        var firedAt: [NIODeadline] = []
        let loop: EmbeddedEventLoop
        var onFire: ((Owner) -> Void)?
        init(_ loop: EmbeddedEventLoop) { self.loop = loop }
        func deadlineReached() {
            firedAt.append(loop.now)
            onFire?(self)
        }
    }

    func ms(_ value: Int64) -> TimeAmount { .milliseconds(value) }

    @Test func firesAtItsDeadlineAndNotBefore() {
        let loop = EmbeddedEventLoop()
        let wheel = DeadlineWheel(eventLoop: loop)
        let owners = [250, 7_000, 12_345].map { _ in Owner(loop) }
        for (owner, delay) in zip(owners, [250, 7_000, 12_345] as [Int64]) {
            wheel.schedule(owner, at: loop.now + ms(delay))
        }
        #expect(wheel.count == 3)
        loop.advanceTime(by: ms(249))
        #expect(owners[0].firedAt.isEmpty)
        loop.advanceTime(by: ms(1))
        #expect(owners[0].firedAt.count == 1)
        loop.advanceTime(by: ms(6_749))
        #expect(owners[1].firedAt.isEmpty, "a deadline past one revolution (5.12 s) waits its turn")
        loop.advanceTime(by: ms(1))
        #expect(owners[1].firedAt.count == 1)
        loop.advanceTime(by: ms(5_344))
        #expect(owners[2].firedAt.isEmpty)
        loop.advanceTime(by: ms(10))
        #expect(owners[2].firedAt.count == 1, "12,345 ms rounds up to the next 10 ms tick")
        #expect(wheel.count == 0)
    }

    @Test func removedAndMovedOwnersFireOnlyWhereTheyAre() {
        let loop = EmbeddedEventLoop()
        let wheel = DeadlineWheel(eventLoop: loop)
        let owners = (0..<50).map { _ in Owner(loop) }
        for owner in owners { wheel.schedule(owner, at: loop.now + ms(100)) } // one bucket
        for owner in owners[10..<20] { wheel.remove(owner) }
        for owner in owners[20..<30] { wheel.schedule(owner, at: loop.now + ms(300)) }
        #expect(wheel.count == 40)
        loop.advanceTime(by: ms(100))
        #expect(owners.indices.filter { owners[$0].firedAt.count == 1 } == Array(0..<10) + Array(30..<50))
        #expect(owners[10..<30].allSatisfy { $0.firedAt.isEmpty })
        loop.advanceTime(by: ms(200))
        #expect(owners[20..<30].allSatisfy { $0.firedAt.count == 1 })
        #expect(owners[10..<20].allSatisfy { $0.firedAt.isEmpty }, "removed ones never fire")
        #expect(wheel.count == 0)
    }

    @Test func anOwnerMayRearmFromItsCallback() {
        let loop = EmbeddedEventLoop()
        let wheel = DeadlineWheel(eventLoop: loop)
        let owner = Owner(loop)
        owner.onFire = { owner in
            if owner.firedAt.count < 3 { wheel.schedule(owner, at: loop.now + .milliseconds(1000)) }
        }
        wheel.schedule(owner, at: loop.now + ms(1000))
        loop.advanceTime(by: .seconds(10))
        #expect(owner.firedAt.count == 3)
        #expect(owner.firedAt.map { $0.uptimeNanoseconds / 1_000_000 } == [1000, 2000, 3000])
    }
}
