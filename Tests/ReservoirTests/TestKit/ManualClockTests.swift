import ReservoirTestKit
import Testing

@Suite("ManualClock")
struct ManualClockTests {
    @Test("advance fires due sleepers in deadline order and leaves later ones asleep")
    func advanceFiresDueSleepers() async throws {
        let clock = ManualClock()
        let woken = LockedBox<[Int]>([])
        let late = Task {
            try await clock.sleep(until: clock.now.advanced(by: .seconds(10)))
            woken.mutate { $0.append(10) }
        }
        #expect(await clock.nextSleep() == ManualClock.Instant(offset: .seconds(10)))
        let early = Task {
            try await clock.sleep(until: clock.now.advanced(by: .seconds(5)))
            woken.mutate { $0.append(5) }
        }
        #expect(await clock.nextSleep() == ManualClock.Instant(offset: .seconds(5)))
        clock.advance(by: .seconds(5))
        try await early.value
        #expect(woken.value == [5])
        #expect(clock.pendingSleeps == [ManualClock.Instant(offset: .seconds(10))])
        clock.advance(by: .seconds(5))
        try await late.value
        #expect(woken.value == [5, 10])
    }

    @Test("cancelling a sleeping task removes its sleeper and throws CancellationError")
    func cancellation() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(1))) }
        await clock.nextSleep()
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.pendingSleeps.isEmpty)
    }

    @Test("a sleep whose deadline has passed returns at once")
    func pastDeadline() async throws {
        let clock = ManualClock()
        clock.advance(by: .seconds(3))
        try await clock.sleep(until: ManualClock.Instant(offset: .seconds(1)))
        #expect(clock.now == ManualClock.Instant(offset: .seconds(3)))
    }

    @Test("waitForSleepers returns once that many tasks sleep at the same time")
    func waitForSleepers() async throws {
        let clock = ManualClock()
        await clock.waitForSleepers(0)
        let sleepers = (1...3).map { seconds in
            Task { try await clock.sleep(until: ManualClock.Instant(offset: .seconds(seconds))) }
        }
        await clock.waitForSleepers(3)
        #expect(clock.sleeperCount == 3)
        clock.advance(by: .seconds(2))
        for sleeper in sleepers.prefix(2) { try await sleeper.value }
        #expect(clock.sleeperCount == 1)
        // Already satisfied: one sleeper is still waiting.
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(1))
        try await sleepers[2].value
        #expect(clock.sleeperCount == 0)
    }
}
