import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Sliding window limiter")
struct SlidingWindowLimiterTests {
    @Test("allows the limit per window and frees permits as segments slide out")
    func slides() throws {
        let clock = ManualClock()
        let limiter = try SlidingWindowLimiter(limit: 3, window: .seconds(1), segments: 10, clock: clock)
        #expect(try limiter.tryAcquire())
        clock.advance(by: .milliseconds(500))
        #expect(try limiter.tryAcquire(permits: 2))
        #expect(try !limiter.tryAcquire())
        #expect(limiter.timeUntilAvailable() == .milliseconds(500))
        clock.advance(by: .milliseconds(500))
        #expect(try limiter.tryAcquire())
        #expect(try !limiter.tryAcquire())
        #expect(limiter.timeUntilAvailable(permits: 2) == .milliseconds(500))
    }

    @Test("shutdown fails the callers waiting for room at once")
    func shutdownWakesWaiters() async throws {
        let clock = ManualClock()
        let limiter = try SlidingWindowLimiter(limit: 1, window: .seconds(1), segments: 4, clock: clock)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        await clock.waitForSleepers(1)
        limiter.shutdown()
        await #expect(throws: BackpressureError(.limiterShutDown, message: "")) { try await waiter.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test("acquire sleeps until room appears; a deadline it would miss fails at once")
    func acquire() async throws {
        let clock = ManualClock()
        let limiter = try SlidingWindowLimiter(limit: 1, window: .seconds(1), segments: 4, clock: clock)
        try await limiter.acquire()
        await #expect(throws: BackpressureError(.deadlineExceeded, message: "")) {
            try await limiter.acquire(deadline: clock.now.advanced(by: .milliseconds(500)))
        }
        let waiter = Task { try await limiter.acquire() }
        await clock.waitForSleepers(1)
        #expect(clock.pendingSleeps.map(\.offset) == [.seconds(1)])
        clock.advance(by: .seconds(1))
        try await waiter.value
    }

    @Test(
        "invalid settings name the field",
        arguments: [(0, 1, 10, "limit"), (1, 0, 10, "window"), (1, 1, 0, "segments")])
    func invalid(limit: Int, seconds: Int, segments: Int, field: String) {
        do {
            _ = try SlidingWindowLimiter(
                limit: limit, window: .seconds(seconds), segments: segments, clock: ManualClock())
            Issue.record("expected an error")
        } catch {
            #expect(error.field == field)
        }
    }
}
