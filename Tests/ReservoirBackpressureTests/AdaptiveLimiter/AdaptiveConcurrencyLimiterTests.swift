import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Adaptive concurrency limiter")
struct AdaptiveConcurrencyLimiterTests {
    @Test("latency measured on the injected clock moves the limit, and the limit is a metric")
    func latencyMovesLimit() async throws {
        let clock = ManualClock()
        let metrics = ObservedMetrics()
        let limiter = try AdaptiveConcurrencyLimiter(
            .aimd(initialLimit: 2, latencyThreshold: .milliseconds(50), backoffRatio: 0.5),
            clock: clock,
            metricsFactory: metrics
        )
        let first = try await limiter.acquire()
        let second = try await limiter.acquire()
        clock.advance(by: .milliseconds(10))
        first.release()  // fast and saturated: +1
        #expect(limiter.limit == 3)
        clock.advance(by: .milliseconds(100))
        second.release()  // slow: × 0.5
        #expect(limiter.limit == 1)
        #expect(metrics.value("backpressure.limiter.limit", [("kind", "adaptive"), ("limiter", "adaptive")]) == 1)
    }

    @Test("a dropped outcome backs off; an ignored one leaves the limit alone")
    func outcomes() async throws {
        let clock = ManualClock()
        let limiter = try AdaptiveConcurrencyLimiter(
            .aimd(initialLimit: 10, latencyThreshold: .seconds(1), backoffRatio: 0.5),
            clock: clock
        )
        try await limiter.acquire().release(outcome: .ignored)
        #expect(limiter.limit == 10)
        try await limiter.acquire().release(outcome: .dropped)
        #expect(limiter.limit == 5)
    }

    @Test("pool waits reported to the limiter move its limit and admit waiters when it grows")
    func poolWaits() async throws {
        let metrics = ObservedMetrics()
        let limiter = try AdaptiveConcurrencyLimiter(
            .poolWaitTime(target: .milliseconds(5), initialLimit: 2, windowSize: 1),
            clock: ManualClock(),
            metricsFactory: metrics
        )
        let first = try await limiter.acquire()
        let second = try await limiter.acquire()
        let waiter = Task { try await limiter.acquire().release() }
        await metrics.waitForLimiterWaiters(1, kind: "adaptive", label: "adaptive")
        #expect(limiter.statistics.waiting == 1)
        limiter.recordPoolWait(.milliseconds(1))  // fast and saturated: +1, admits the waiter
        try await waiter.value
        #expect(limiter.limit == 3)
        limiter.recordPoolWait(.milliseconds(20))
        #expect(limiter.limit == 1)
        #expect(limiter.statistics.latencyEstimate == .milliseconds(20))
        first.release()
        second.release()
    }

    @Test(
        "invalid policies name the field",
        arguments: [
            (AdaptiveLimitPolicy.aimd(initialLimit: 0, minLimit: 0, latencyThreshold: .seconds(1)), "minLimit"),
            (.aimd(initialLimit: 5, minLimit: 10, maxLimit: 5, latencyThreshold: .seconds(1)), "maxLimit"),
            (.aimd(initialLimit: 50, maxLimit: 10, latencyThreshold: .seconds(1)), "initialLimit"),
            (.aimd(latencyThreshold: .zero), "latencyThreshold"),
            (.aimd(latencyThreshold: .seconds(1), backoffRatio: 1), "backoffRatio"),
            (.gradient(tolerance: 0.5), "tolerance"),
            (.gradient(smoothing: 0), "smoothing"),
            (.gradient(windowSize: 0), "windowSize"),
            (.poolWaitTime(target: .zero), "target"),
        ]
    )
    func invalid(policy: AdaptiveLimitPolicy, field: String) {
        do {
            _ = try AdaptiveConcurrencyLimiter(policy, clock: ManualClock())
            Issue.record("expected an error")
        } catch {
            #expect(error.field == field)
        }
    }
}
