import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool: self-sizing")
struct ResourcePoolSelfSizingTests {
    @Test("off by default: the effective maximum is maximumSize, in the statistics and the metric")
    func offByDefault() async throws {
        let harness = try PoolHarness { $0.maximumSize = 6 }
        #expect(harness.pool.statistics.effectiveMaximumSize == 6)
        #expect(harness.metrics.gauge("reservoir.pool.effective_max") == 6)
        try await harness.shutdown()
    }

    @Test("on, the pool leases no more than its effective maximum: a third caller waits, nothing is created for it")
    func gatesAtTheEffectiveMaximum() async throws {
        let harness = try PoolHarness {
            $0.maximumSize = 8
            $0.selfSizing = .throughputSeeking(initialSize: 2)
        }
        #expect(harness.metrics.gauge("reservoir.pool.effective_max") == 2)
        let first = try await harness.pool.lease()
        let second = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { _ in } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        let stats = harness.pool.statistics
        #expect(stats.effectiveMaximumSize == 2)
        #expect(stats.maximumSize == 8)
        #expect(stats.leased == 2)
        #expect(stats.creating == 0)
        #expect(stats.totals.creations == 2)
        await first.release()
        try await waiter.value
        await second.release()
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
    }

    @Test("the configuration in docs/pool.md's self-sizing section is valid")
    func documentedConfiguration() async throws {
        var configuration = ResourcePoolConfiguration(name: "orders-db")
        configuration.maximumSize = 64
        configuration.selfSizing = .throughputSeeking()  // off (nil) by default
        let pool = try ResourcePool<Int, ContinuousClock>(
            configuration: configuration,
            factory: ResourceFactory(create: { 1 }, close: { _ in })
        )
        // It starts at max(minimumSize, 1) and climbs from there.
        #expect(pool.statistics.effectiveMaximumSize == 1)
    }

    @Test("an invalid self-sizing policy is refused, naming the field")
    func invalidPolicy() {
        var configuration = ResourcePoolConfiguration(name: "x")
        configuration.maximumSize = 4
        configuration.selfSizing = .throughputSeeking(initialSize: 5)
        let error = #expect(throws: ResourcePoolError.self) {
            try ResourcePool<Int, ContinuousClock>(
                configuration: configuration,
                factory: ResourceFactory(create: { 1 }, close: { _ in })
            )
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("selfSizing.initialSize") == true)
    }
}
