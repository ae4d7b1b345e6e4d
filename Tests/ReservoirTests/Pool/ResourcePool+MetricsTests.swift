@testable import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool: metrics and statistics")
struct ResourcePoolMetricsTests {
    @Test("metrics carry the OpenTelemetry names and the pool name, and read back the pool's figures")
    func metricsReadBack() async throws {
        let harness = try PoolHarness {
            $0.maximumSize = 3
            $0.minimumSize = 1
        }
        try await harness.pool.waitForStatistics { $0.idle == 1 }
        let lease = try await harness.pool.lease()
        #expect(harness.metrics.gauge("db.client.connection.count", ["db.client.connection.state": "used"]) == 1)
        #expect(harness.metrics.gauge("db.client.connection.count", ["db.client.connection.state": "idle"]) == 0)
        harness.clock.advance(by: .milliseconds(250))
        await lease.release()
        #expect(harness.metrics.gauge("db.client.connection.count", ["db.client.connection.state": "used"]) == 0)
        #expect(harness.metrics.gauge("db.client.connection.count", ["db.client.connection.state": "idle"]) == 1)
        #expect(harness.metrics.timerValues("db.client.connection.use_time") == [250_000_000])
        #expect(harness.metrics.timerValues("db.client.connection.wait_time") == [0])
        #expect(harness.metrics.gauge("db.client.connection.max") == 3)
        #expect(harness.metrics.gauge("db.client.connection.idle.max") == 3)
        #expect(harness.metrics.gauge("db.client.connection.idle.min") == 1)
        #expect(harness.metrics.timerValues("db.client.connection.create_time").count == 1)
        // Every metric has the pool name as a dimension.
        let all = ["db.client.connection.count", "db.client.connection.wait_time", "reservoir.pool.leaks"]
        for label in all {
            #expect(!harness.metrics.records(label).isEmpty)
            #expect(harness.metrics.records(label).allSatisfy {
                $0.dimensions["db.client.connection.pool.name"] == "test"
            })
        }
        try await harness.shutdown()
    }

    @Test("waiting shows in pending_requests, wait_time, and the oldest waiter's age")
    func waitFigures() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let lease = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        #expect(harness.metrics.gauge("db.client.connection.pending_requests") == 1)
        harness.clock.advance(by: .seconds(3))
        #expect(harness.pool.statistics.oldestWaiterAge == .seconds(3))
        await lease.release()
        _ = try await waiter.value
        #expect(harness.metrics.timerValues("db.client.connection.wait_time") == [0, 3_000_000_000])
        #expect(harness.metrics.gauge("db.client.connection.pending_requests") == 0)
        let stats = harness.pool.statistics
        #expect(stats.oldestWaiterAge == nil)
        #expect(stats.window.acquisitions == 2)
        #expect(stats.window.p99WaitTime ?? .zero >= .seconds(3))
        try await harness.shutdown()
    }

    @Test("the window figures feed Little's law in the sizing advice")
    func sizingAdviceFromLiveFigures() async throws {
        let harness = try PoolHarness {
            $0.maximumSize = 20
            $0.statisticsWindow = .seconds(60)
        }
        // 100 leases, each held 100 ms, one every 100 ms: λ = 10/s, W = 0.1 s, L = 1 busy resource.
        for _ in 0..<100 {
            let lease = try await harness.pool.lease()
            harness.clock.advance(by: .milliseconds(100))
            await lease.release()
        }
        let stats = harness.pool.statistics
        #expect(stats.window.acquisitions == 100)
        #expect(abs(stats.window.acquireRate - 10) < 0.01)
        #expect(stats.window.meanHoldTime == .milliseconds(100))
        #expect(abs(stats.sizing.busyResources - 1) < 0.01)
        // ⌈(1 + 2.33·√1) × 1.2⌉ = ⌈3.996⌉ = 4; 20 ≥ 2 × 4: oversized.
        #expect(stats.sizing.recommendedSize == 4)
        #expect(stats.sizing.verdict == .oversized)
        try await harness.shutdown()
    }
}

@Suite("SizingAdvice: waiting, the database's knee, and Little's law")
struct SizingAdviceTests {
    static func window(
        rate: Double,
        hold: Duration,
        wait: Duration = .zero,
        timeouts: Int = 0
    ) -> ResourcePoolStatistics.Window {
        ResourcePoolStatistics.Window(
            duration: .seconds(60), acquisitions: Int(rate * 60), timeouts: timeouts, acquireRate: rate,
            meanHoldTime: hold, p99HoldTime: hold, meanWaitTime: wait, p99WaitTime: wait
        )
    }

    @Test("without waiting callers Little's law sizes the pool, and it is never called undersized", arguments: [
        // λ = 100/s, W = 50 ms → L = 5 → ⌈(5 + 2.33·√5) × 1.2⌉ = ⌈12.25⌉ = 13, capped at the maximum.
        (100.0, Duration.milliseconds(50), 10, SizingAdvice.Verdict.fine, 10),
        (100.0, .milliseconds(50), 16, .fine, 13),
        (100.0, .milliseconds(50), 40, .oversized, 13),
        // The case: a pool of 4 averaging 1.05 busy, nobody waiting.
        (105.0, .milliseconds(10), 4, .fine, 4),
    ])
    func verdicts(rate: Double, hold: Duration, maximum: Int, verdict: SizingAdvice.Verdict, size: Int) {
        let advice = SizingAdvice.compute(
            window: Self.window(rate: rate, hold: hold), releases: 6000, minimumSize: 0, maximumSize: maximum,
            headroom: 0.2, leasedNow: 0
        )
        #expect(advice.verdict == verdict)
        #expect(advice.recommendedSize == size)
    }

    @Test("a saturated pool is not undersized from λ·W alone: with the knee unknown it says so and asks to shed")
    func saturatedWithoutKnee() {
        // The demo's case: 8 connections all busy (λ·W = 7.95), callers wait 20 ms for a 10 ms hold.
        let advice = SizingAdvice.compute(
            window: Self.window(rate: 795, hold: .milliseconds(10), wait: .milliseconds(20)), releases: 6000,
            minimumSize: 2, maximumSize: 8, headroom: 0.2, leasedNow: 8
        )
        #expect(advice.verdict == .saturated)
        #expect(advice.recommendedSize == 8)
        #expect(advice.explanation.contains("knee is unknown"))
        #expect(advice.explanation.contains("shed load"))
    }

    @Test("with the database's knee known, waiting callers mean undersized below it and saturated at it")
    func kneeDecides() {
        let window = Self.window(rate: 795, hold: .milliseconds(10), wait: .milliseconds(20))
        let below = SizingAdvice.compute(
            window: window, releases: 6000, minimumSize: 2, maximumSize: 8, headroom: 0.2, leasedNow: 8,
            throughputKnee: 12
        )
        #expect(below.verdict == .undersized)
        #expect(below.recommendedSize == 12)
        let atKnee = SizingAdvice.compute(
            window: window, releases: 6000, minimumSize: 2, maximumSize: 8, headroom: 0.2, leasedNow: 8,
            throughputKnee: 4
        )
        #expect(atKnee.verdict == .saturated)
        #expect(atKnee.recommendedSize == 4)
        #expect(atKnee.explanation.contains("would not add throughput"))
    }

    @Test("timeouts count as waiting even when the mean wait is short")
    func timeoutsMeanWaiting() {
        let advice = SizingAdvice.compute(
            window: Self.window(rate: 1, hold: .milliseconds(10), timeouts: 3), releases: 60, minimumSize: 0,
            maximumSize: 4, headroom: 0.2, leasedNow: 4, throughputKnee: 16
        )
        #expect(advice.verdict == .undersized)
    }

    @Test("too few releases give no verdict")
    func insufficientData() {
        let advice = SizingAdvice.compute(
            window: Self.window(rate: 1, hold: .milliseconds(10)), releases: 10, minimumSize: 0, maximumSize: 4,
            headroom: 0.2, leasedNow: 0
        )
        #expect(advice.verdict == .insufficientData)
    }
}
