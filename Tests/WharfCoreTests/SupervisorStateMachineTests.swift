import Glibc
import NIOCore
import Testing
@testable import WharfCore

/// The supervisor's decisions without processes: pids are made up, the clock is a value.
@Suite struct SupervisorStateMachineTests {
    var machine = SupervisorStateMachine()
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var nextPID: pid_t = 100

    static func settings(_ number: Int, processes: Int = 2, maxGenerations: Int = 4) -> GenerationSettings {
        GenerationSettings(number: number, processes: processes, drainTimeout: .seconds(5),
                           stallTimeout: .seconds(3), maxGenerations: maxGenerations)
    }

    /// Carries out spawn actions with fresh pids; returns the other actions and the pids.
    mutating func run(_ actions: [SupervisorAction]) -> (rest: [SupervisorAction], spawned: [pid_t]) {
        var rest: [SupervisorAction] = []
        var spawned: [pid_t] = []
        var queue = actions
        while !queue.isEmpty {
            let action = queue.removeFirst()
            guard case let .spawn(generation, slot) = action else {
                rest.append(action)
                continue
            }
            nextPID += 1
            spawned.append(nextPID)
            queue += machine.spawned(pid: nextPID, generation: generation, slot: slot, at: now)
        }
        return (rest, spawned)
    }

    /// Starts generation 1 with two ready workers.
    mutating func serving() -> [pid_t] {
        let (_, pids) = run(machine.start(Self.settings(1)))
        for pid in pids { _ = machine.received(.ready, from: pid, at: now) }
        return pids
    }

    func sends(_ actions: [SupervisorAction]) -> [SupervisorMessage: [pid_t]] {
        var result: [SupervisorMessage: [pid_t]] = [:]
        for case let .send(message, pid) in actions { result[message, default: []].append(pid) }
        return result
    }

    @Test mutating func startupWaitsForEveryWorkerThenLetsThemAccept() {
        let (rest, pids) = run(machine.start(Self.settings(1)))
        #expect(rest.isEmpty && pids.count == 2)
        #expect(machine.received(.ready, from: pids[0], at: now).isEmpty, "one of two is not enough")
        let actions = machine.received(.ready, from: pids[1], at: now)
        #expect(sends(actions)[.accept] == pids)
        #expect(actions.contains(.serving(generation: 1, replaced: nil)))
        #expect(machine.phase == .running)
    }

    @Test mutating func aStartupFailureStopsTheOthersAndExitsWithItsCode() {
        let (_, pids) = run(machine.start(Self.settings(1)))
        let failed = machine.received(.failed(.plugin, "no such plugin"), from: pids[0], at: now)
        #expect(failed.contains(.failed(generation: 1, .plugin, "no such plugin")))
        #expect(sends(failed)[.stop] == pids)
        #expect(machine.exited(pid: pids[0], status: 2 << 8, at: now).contains(.exit(2)) == false)
        #expect(machine.exited(pid: pids[1], status: 0, at: now).contains(.exit(2)))
    }

    @Test mutating func aCrashIsReplacedAtOnceAndACrashLoopBacksOff() {
        var pid = serving()[0]
        for crash in 1...4 {
            now = now + .milliseconds(100)
            let (rest, spawned) = run(machine.exited(pid: pid, status: 11, at: now))
            #expect(spawned.count == 1, "crash \(crash) is replaced at once")
            #expect(rest.contains { if case .log(.error, let text) = $0 { text.contains("killed by SIGSEGV") } else { false } })
            pid = spawned[0]
            _ = machine.received(.ready, from: pid, at: now)
        }
        now = now + .milliseconds(100)
        let (rest, spawned) = run(machine.exited(pid: pid, status: 11, at: now))
        #expect(spawned.isEmpty, "the fifth crash in 10 s waits")
        #expect(rest.contains(.suspend(generation: 1, slot: 0)), "its sockets close meanwhile")
        #expect(rest.contains { if case .log(.critical, let text) = $0 { text.contains("next start in 1000 ms") } else { false } })
        #expect(machine.crashLooping(at: now).map(\.slot) == [0])
        #expect(run(machine.tick(at: now + .milliseconds(900))).spawned.isEmpty)
        let back = run(machine.tick(at: now + .milliseconds(1000))).spawned
        #expect(back.count == 1)
        _ = machine.received(.ready, from: back[0], at: now + .seconds(1))
        #expect(machine.crashLooping(at: now + .seconds(20)).map(\.slot) == [0], "not yet up for 30 s")
        #expect(machine.crashLooping(at: now + .seconds(32)).isEmpty, "up for 30 s: the loop is over")
    }

    @Test func restartPolicyDoublesUntilAWorkerStaysUp() {
        var policy = RestartPolicy()
        var now = NIODeadline.uptimeNanoseconds(0)
        var delays: [Int64] = []
        for _ in 0..<9 {
            delays.append(policy.delay(afterCrashAt: now, uptime: .milliseconds(50)).nanoseconds / 1_000_000)
            now = now + .seconds(1)
        }
        #expect(delays == [0, 0, 0, 0, 1000, 2000, 4000, 8000, 16000])
        #expect(policy.delay(afterCrashAt: now + .seconds(100), uptime: .seconds(60)) == .zero, "a stable worker resets it")
        var capped = RestartPolicy()
        for second in 0..<30 { _ = capped.delay(afterCrashAt: .uptimeNanoseconds(UInt64(second) * 1_000_000_000), uptime: .zero) }
        #expect(capped.delay(afterCrashAt: .uptimeNanoseconds(31_000_000_000), uptime: .zero) == .seconds(60))
    }

    @Test mutating func aReloadHandsEachSlotOverAndIsAnnouncedWhenTheOldLetGo() {
        let old = serving()
        let (rest, new) = run(machine.reload(Self.settings(2)))
        #expect(rest.isEmpty && new.count == 2)
        #expect(machine.canReload == "another reload is in progress")
        _ = machine.received(.ready, from: new[0], at: now)
        let promoted = machine.received(.ready, from: new[1], at: now)
        #expect(sends(promoted)[.retire] == old)
        #expect(sends(promoted)[.accept] == nil, "the old workers still accept")
        #expect(!promoted.contains { if case .serving = $0 { true } else { false } })
        let first = machine.received(.released, from: old[0], at: now)
        #expect(sends(first)[.accept] == [new[0]], "slot 0 is free")
        #expect(first.first == .closeUnusedSockets)
        let second = machine.received(.released, from: old[1], at: now)
        #expect(sends(second)[.accept] == [new[1]])
        #expect(second.contains(.serving(generation: 2, replaced: 1)))
        #expect(machine.exited(pid: old[0], status: 0, at: now).contains(.release(generation: 1)) == false)
        #expect(machine.exited(pid: old[1], status: 0, at: now).contains(.release(generation: 1)))
        #expect(machine.liveGenerations == [2])
    }

    @Test mutating func aStuckOldWorkerDoesNotHoldTheReloadForever() {
        let old = serving()
        let (_, new) = run(machine.reload(Self.settings(2)))
        for pid in new { _ = machine.received(.ready, from: pid, at: now) }
        _ = machine.received(.released, from: old[0], at: now)
        let late = machine.tick(at: now + SupervisorStateMachine.handoverTimeout)
        #expect(sends(late)[.accept] == [new[1]])
        #expect(late.contains(.serving(generation: 2, replaced: 1)))
    }

    @Test mutating func aFailedReloadChangesNothing() {
        let old = serving()
        let (_, new) = run(machine.reload(Self.settings(2)))
        let failed = machine.received(.failed(.plugin, "init refused"), from: new[0], at: now)
        #expect(failed.contains(.failed(generation: 2, .plugin, "init refused")))
        #expect(sends(failed)[.stop] == new)
        #expect(sends(failed)[.retire] == nil)
        _ = machine.exited(pid: new[0], status: 2 << 8, at: now)
        #expect(machine.exited(pid: new[1], status: 0, at: now).contains(.release(generation: 2)))
        #expect(machine.servingGeneration == 1)
        #expect(machine.canReload == nil, "the next reload may start")
        #expect(Set(machine.workerIDs) == Set(old))
    }

    @Test mutating func generationsAreBounded() {
        _ = serving()
        for number in 2...3 {
            let (_, new) = run(machine.reload(Self.settings(number, maxGenerations: 2)))
            var actions: [SupervisorAction] = []
            for pid in new { actions += machine.received(.ready, from: pid, at: now) }
            if number == 3 {
                #expect(actions.contains { if case .log(.notice, let text) = $0 { text.contains("max_generations (2)") } else { false } })
                #expect(sends(actions)[.stop]?.count == 2, "generation 1's workers are stopped")
            }
        }
    }

    @Test mutating func stoppingDrainsEveryoneThenExits() {
        let pids = serving()
        let first = machine.terminate(at: now)
        #expect(sends(first)[.drain] == pids)
        let second = machine.terminate(at: now)
        #expect(sends(second)[.stop] == pids, "a second signal stops at once")
        #expect(run(machine.exited(pid: pids[0], status: 11, at: now)).spawned.isEmpty, "no respawn while stopping")
        #expect(machine.exited(pid: pids[1], status: 0, at: now) == [.closeUnusedSockets, .exit(0)])
    }

    @Test mutating func aSilentWorkerIsKilledAsStalled() {
        let pids = serving()
        now = now + .seconds(2)
        _ = machine.received(.alive, from: pids[1], at: now)
        let actions = machine.tick(at: now + .milliseconds(1500))
        #expect(actions.contains(.kill(pids[0])))
        #expect(!actions.contains(.kill(pids[1])))
        #expect(!machine.workersAlive(at: now + .milliseconds(1500), within: .seconds(1)))
    }
}

/// What the admin endpoint asks the machine: readiness and why a worker's end was a failure.
@Suite struct SupervisorReadinessTests {
    var machine = SupervisorStateMachine()
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    mutating func start() -> [pid_t] {
        var pids: [pid_t] = []
        for case let .spawn(generation, slot) in machine.start(SupervisorStateMachineTests.settings(1)) {
            let pid = pid_t(200 + slot)
            _ = machine.spawned(pid: pid, generation: generation, slot: slot, at: now)
            pids.append(pid)
        }
        return pids
    }

    @Test mutating func readyOnlyWhileEverySlotServesAndNotStopping() {
        let pids = start()
        #expect(machine.notReadyReason == "starting")
        for pid in pids { _ = machine.received(.ready, from: pid, at: now) }
        #expect(machine.notReadyReason == nil)
        _ = machine.exited(pid: pids[1], status: 11, at: now)
        #expect(machine.notReadyReason == "worker slot 1 of generation 1 is being replaced")
        _ = machine.terminate(at: now)
        #expect(machine.notReadyReason?.hasPrefix("draining") == true)
    }

    @Test mutating func failureCausesTellCrashesFromStallsAndExpectedEnds() {
        let pids = start()
        for pid in pids { _ = machine.received(.ready, from: pid, at: now) }
        #expect(machine.failureCause(of: pids[0], status: 11) == "signal")
        #expect(machine.failureCause(of: pids[0], status: 3 << 8) == "exit")
        let stalled = machine.tick(at: now + .seconds(4))
        #expect(stalled.contains(.kill(pids[0])))
        #expect(machine.failureCause(of: pids[0], status: 9) == "stall")
        _ = machine.terminate(at: now + .seconds(4))
        #expect(machine.failureCause(of: pids[1], status: 0) == nil, "told to drain: no failure")
    }
}
