import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Rate limiter")
struct RateLimiterTests {
    @Test("tryAcquire takes the burst, then refuses until the clock moves")
    func tryAcquire() throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 2), clock: clock)
        #expect(try limiter.tryAcquire())
        #expect(try limiter.tryAcquire())
        #expect(try !limiter.tryAcquire())
        clock.advance(by: .milliseconds(100))
        #expect(try limiter.tryAcquire())
        #expect(try !limiter.tryAcquire())
    }

    @Test("waiters are served in FIFO order at their exact slots")
    func fifoWaiters() async throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 1), clock: clock)
        try await limiter.acquire()
        let (served, servedContinuation) = AsyncStream<Int>.makeStream()
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<4 {
            tasks.append(
                Task {
                    try await limiter.acquire()
                    servedContinuation.yield(index)
                })
            await clock.waitForSleepers(index + 1)
        }
        var order: [Int] = []
        var servedIterator = served.makeAsyncIterator()
        #expect(
            clock.pendingSleeps.map(\.offset)
                == [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(400)]
        )
        // Each slot in turn: exactly the waiter whose slot came goes, and the others keep sleeping. (Two waiters whose
        // slots both passed before anyone looked may continue in either order; that is scheduling, not the limiter.)
        for served in 1...4 {
            clock.advance(by: .milliseconds(100))
            order.append(try #require(await servedIterator.next()))
            #expect(clock.sleeperCount == 4 - served)
        }
        for task in tasks { try await task.value }
        #expect(order == [0, 1, 2, 3])
    }

    @Test("a cancelled waiter gives its reservation back")
    func cancelRefunds() async throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 1), clock: clock)
        try await limiter.acquire()
        let waiter = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                try await limiter.acquire()
                return nil
            } catch {
                return error.code
            }
        }
        await clock.waitForSleepers(1)
        waiter.cancel()
        #expect(await waiter.value == .cancelled)
        // The refunded slot at 100 ms goes to the next caller.
        let reservation = try limiter.reserve()
        #expect(reservation.delay(from: clock.now) == .milliseconds(100))
    }

    @Test("a deadline the slot would miss fails at once, without reserving")
    func deadline() async throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 1, burst: 1), clock: clock)
        try await limiter.acquire()
        await #expect(throws: BackpressureError(.deadlineExceeded, message: "")) {
            try await limiter.acquire(timeout: .milliseconds(999))
        }
        #expect(clock.sleeperCount == 0)
        #expect(try limiter.reserve().delay(from: clock.now) == .seconds(1))
    }

    @Test("a reservation can be refunded before its time")
    func reservationRefund() throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 1), clock: clock)
        _ = try limiter.reserve()
        let second = try limiter.reserve()
        #expect(second.delay(from: clock.now) == .milliseconds(100))
        limiter.refund(second)
        #expect(try limiter.reserve().delay(from: clock.now) == .milliseconds(100))
    }

    @Test("setRate changes the spacing at run time")
    func setRate() throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 1), clock: clock)
        _ = try limiter.reserve()
        try limiter.setRate(1)
        #expect(try limiter.reserve().delay(from: clock.now) == .seconds(1))
        #expect(limiter.policy == .tokenBucket(rate: 1, burst: 1))
        #expect(throws: BackpressureError(.invalidConfiguration, message: "")) { try limiter.setRate(0) }
    }

    @Test("asking for more than the burst and using a shut-down limiter are distinct errors")
    func distinctErrors() async throws {
        let limiter = try RateLimiter(.tokenBucket(rate: 10, burst: 3), clock: ManualClock())
        #expect(throws: BackpressureError(.permitsExceedCapacity, message: "")) { try limiter.tryAcquire(permits: 4) }
        limiter.shutdown()
        #expect(throws: BackpressureError(.limiterShutDown, message: "")) { try limiter.tryAcquire() }
        await #expect(throws: BackpressureError(.limiterShutDown, message: "")) { try await limiter.acquire() }
    }

    @Test("shutdown fails the callers waiting for their slot at once; a cancelled waiter still gets cancelled")
    func shutdownWakesWaiters() async throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 1, burst: 1), clock: clock)
        try await limiter.acquire()
        let cancelled = Task { try await limiter.acquire() }
        await clock.waitForSleepers(1)
        cancelled.cancel()
        await #expect(throws: BackpressureError(.cancelled, message: "")) { try await cancelled.value }
        let waiters = (0..<2).map { _ in Task { try await limiter.acquire() } }
        await clock.waitForSleepers(2)
        limiter.shutdown()
        // No clock movement: the waiters end because of the shutdown, not because their slots came.
        for waiter in waiters {
            await #expect(throws: BackpressureError(.limiterShutDown, message: "")) { try await waiter.value }
        }
        #expect(clock.sleeperCount == 0)
        await #expect(throws: BackpressureError(.limiterShutDown, message: "")) { try await limiter.acquire() }
    }

    @Test(
        "invalid policies throw a typed error naming the field",
        arguments: [
            (RateLimitPolicy.tokenBucket(rate: 0, burst: 1), "rate"),
            (.tokenBucket(rate: -1, burst: 1), "rate"),
            (.tokenBucket(rate: .nan, burst: 1), "rate"),
            (.tokenBucket(rate: .infinity, burst: 1), "rate"),
            (.tokenBucket(rate: 1, burst: 0), "burst"),
            (.smoothWarmingUp(rate: 1, warmupPeriod: .zero), "warmupPeriod"),
            (.smoothWarmingUp(rate: 1, warmupPeriod: .seconds(1), coldFactor: 0.5), "coldFactor"),
        ]
    )
    func invalid(policy: RateLimitPolicy, field: String) {
        do {
            _ = try RateLimiter(policy, clock: ManualClock())
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.field == field)
        }
    }

    @Test("grants and rejections are counted")
    func metrics() throws {
        let metrics = ObservedMetrics()
        let limiter = try RateLimiter(
            .tokenBucket(rate: 1, burst: 1), clock: ManualClock(), label: "api", metricsFactory: metrics)
        _ = try limiter.tryAcquire()
        _ = try limiter.tryAcquire()
        let dimensions = [("kind", "rate"), ("limiter", "api")]
        #expect(metrics.value("backpressure.limiter.granted", dimensions) == 1)
        #expect(metrics.value("backpressure.limiter.rejected", dimensions) == 1)
    }
}
