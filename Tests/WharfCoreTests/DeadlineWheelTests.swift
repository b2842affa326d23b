import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
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

    /// The daemon's alarm: a Dispatch timer off the loop that posts onto it. Real time,
    /// bounded waits.
    @Test func theDispatchAlarmWakesTheLoopNotEarly() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let eventLoop = group.next()
        let fired = NIOLockedValueBox<[Int64]>([])
        final class RealOwner: DeadlineOwner {
            var wheelSlot: DeadlineWheel.Slot?
            let onFire: () -> Void
            init(_ onFire: @escaping () -> Void) { self.onFire = onFire }
            func deadlineReached() { onFire() }
        }
        let start = NIODeadline.now()
        let setUp = try eventLoop.submit { () -> UnsafeTransfer<(DeadlineWheel, [RealOwner])> in
            let wheel = DeadlineWheel(eventLoop: eventLoop, alarm: .dispatchTimer)
            let owners = [80, 200].map { delay in
                RealOwner {
                    #expect(eventLoop.inEventLoop, "fired on the wheel's loop")
                    fired.withLockedValue { $0.append(Int64((NIODeadline.now() - start).nanoseconds / 1_000_000)) }
                }.also { wheel.schedule($0, at: start + .milliseconds(Int64(delay))) }
            }
            return UnsafeTransfer((wheel, owners))
        }.wait()
        let deadline = NIODeadline.now() + .seconds(5)
        while fired.withLockedValue({ $0.count }) < 2, NIODeadline.now() < deadline { usleep(5_000) }
        let times = fired.withLockedValue { $0 }
        #expect(times.count == 2)
        #expect(times.first.map { $0 >= 80 } == true && times.last.map { $0 >= 200 } == true, "never early: \(times)")
        withExtendedLifetime(setUp) {}
    }
}

extension DeadlineOwner {
    /// Runs `body` on the value and returns it (for building in one expression).
    func also(_ body: (Self) -> Void) -> Self {
        body(self)
        return self
    }
}
