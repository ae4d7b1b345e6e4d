import Logging
import Reservoir
import ReservoirTestKit
import ServiceLifecycleTestKit
import Testing

@Suite("ResourcePool: creation failures, leaks, shutdown")
struct ResourcePoolFailureTests {
    @Test("creation retries on the backoff, the breaker fails waiters fast with the last error, and closes on success")
    func backoffAndCircuitBreaker() async throws {
        let harness = try PoolHarness(
            {
                $0.maximumSize = 1
                $0.circuitBreakerThreshold = 2
                $0.creationBackoff = .exponential(initial: .seconds(1), multiplier: 2, maximum: .seconds(8), jitter: 0)
            },
            creation: .manual
        )
        let waiter = Task { try await harness.pool.withResource { $0 } }
        await harness.factory.nextCreation().fail(MockCreationError("refused"))
        try await harness.pool.waitForStatistics { $0.consecutiveCreationFailures == 1 }
        // The retry waits for the 1 s backoff.
        harness.clock.advance(by: .milliseconds(999))
        #expect(harness.factory.createCalls == 1)
        harness.clock.advance(by: .milliseconds(1))
        await harness.factory.nextCreation().fail(MockCreationError("refused again"))
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .circuitBreakerOpen)
        #expect(error?.underlying as? MockCreationError == MockCreationError("refused again"))
        // While open, acquires fail at once.
        let fast = await #expect(throws: ResourcePoolError.self) { try await harness.pool.withResource { $0 } }
        #expect(fast?.code == .circuitBreakerOpen)
        #expect(harness.metrics.gauge("reservoir.pool.circuit_breaker.open") == 1)
        // The probe runs after the doubled backoff (2 s) and its success closes the breaker.
        harness.clock.advance(by: .seconds(2))
        await harness.factory.nextCreation().succeed()
        try await harness.pool.waitForStatistics { !$0.circuitBreakerOpen && $0.idle == 1 }
        #expect(try await harness.pool.withResource { $0 } == MockResource(id: 3))
        #expect(harness.metrics.gauge("reservoir.pool.circuit_breaker.open") == 0)
        #expect(harness.metrics.counter("reservoir.pool.creation_failures") == 2)
        try await harness.shutdown()
    }

    @Test("a lease held past the leak threshold is reported with its site, then reported as recovered")
    func leakThreshold() async throws {
        let harness = try PoolHarness { $0.leakThreshold = .seconds(10) }
        let lease = try await harness.pool.lease()
        harness.clock.advance(by: .seconds(10))
        try await harness.pool.waitForStatistics { $0.totals.leaksHeldTooLong == 1 }
        let warning = try #require(harness.logs.messages(at: .warning).first { $0.message.contains("leak threshold") })
        #expect(warning.metadata["lease.site"]?.contains("ResourcePool+FailureTests.swift") == true)
        #expect(warning.metadata["lease.hold_ms"] == "10000")
        #expect(harness.metrics.counter("reservoir.pool.leaks", ["kind": "held_too_long"]) == 1)
        harness.clock.advance(by: .seconds(5))
        await lease.release()
        let stats = harness.pool.statistics
        #expect(stats.totals.leaksRecovered == 1)
        #expect(stats.leaksBySite.count == 1)
        #expect(stats.leaksBySite.first?.site.contains("ResourcePool+FailureTests.swift") == true)
        #expect(stats.leaksBySite.first?.site.contains("leakThreshold()") == true)
        #expect(stats.leaksBySite.first?.heldTooLong == 1)
        #expect(stats.leaksBySite.first?.dropped == 0)
        #expect(harness.metrics.counter("reservoir.pool.leaks.recovered") == 1)
        #expect(harness.logs.messages(at: .info).contains { $0.message.contains("came back") })
        try await harness.shutdown()
    }

    @Test("a lease dropped without release is an exact leak: counted, logged with its site, closed and replaced")
    func droppedLease() async throws {
        let harness = try PoolHarness { $0.minimumSize = 1 }
        try await harness.pool.waitForStatistics { $0.idle == 1 }
        do {
            let lease = try await harness.pool.lease()
            #expect(lease.resource == MockResource(id: 1))
        }
        let stats = try await harness.pool.waitForStatistics {
            $0.totals.leaksDropped == 1 && $0.idle == 1 && $0.closing == 0
        }
        #expect(stats.leased == 0)
        #expect(harness.factory.closed == [MockResource(id: 1)])
        #expect(stats.totals.evictions["leaked"] == 1)
        #expect(harness.metrics.counter("reservoir.pool.leaks", ["kind": "dropped"]) == 1)
        let warning = try #require(harness.logs.messages(at: .warning).first { $0.message.contains("dropped") })
        #expect(warning.metadata["lease.site"]?.contains("ResourcePool+FailureTests.swift") == true)
        #expect(stats.leaksBySite.map(\.dropped) == [1])
        #expect(stats.leaksBySite.first?.site == warning.metadata["lease.site"])
        // The leaked resource is never handed out again.
        #expect(try await harness.pool.withResource { $0 } == MockResource(id: 2))
        try await harness.shutdown()
    }

    @Test("leak reports are counted by acquire site, most first, and sites past the table's size are added up")
    func leaksBySite() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let sites = ResourcePoolStatistics.LeakSite.maximumSites + 5
        // Two leaks from one site, then one from each of many distinct sites (distinct lines of the acquire call).
        for _ in 0..<2 {
            _ = try await harness.pool.lease(line: 1)
            try await harness.pool.waitForStatistics { $0.leased == 0 && $0.closing == 0 }
        }
        for line in 2...UInt(sites) {
            _ = try await harness.pool.lease(line: line)
            try await harness.pool.waitForStatistics { $0.leased == 0 && $0.closing == 0 }
        }
        let stats = harness.pool.statistics
        #expect(stats.totals.leaksDropped == sites + 1)
        #expect(stats.leaksBySite.count == ResourcePoolStatistics.LeakSite.maximumSites)
        #expect(stats.leaksBySite.reduce(0) { $0 + $1.dropped } == sites + 1)
        // Sites 1…63 have their own rows; the rest (and only they) are added up.
        let other = try #require(stats.leaksBySite.first { $0.site == ResourcePoolStatistics.LeakSite.otherSites })
        #expect(other.dropped == sites - (ResourcePoolStatistics.LeakSite.maximumSites - 1))
        #expect(stats.leaksBySite.filter { $0.site.contains(":1 in ") }.map(\.dropped) == [2])
        try await harness.shutdown()
    }

    @Test("graceful shutdown fails waiters and new acquires, lets leases finish, then closes everything")
    func gracefulDrain() async throws {
        let harness = try PoolHarness { $0.maximumSize = 2 }
        let held = try await harness.pool.lease()
        let idle = try await harness.pool.lease()
        await idle.release()
        let other = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        harness.pool.triggerGracefulShutdown()
        let waiterError = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(waiterError?.code == .shutDown)
        let newError = await #expect(throws: ResourcePoolError.self) { try await harness.pool.withResource { $0 } }
        #expect(newError?.code == .shutDown)
        await other.release()
        await held.release()
        try await harness.runTask.value
        #expect(Set(harness.factory.closed) == [MockResource(id: 1), MockResource(id: 2)])
        try await harness.pool.expectNoOutstandingLeases()
    }

    @Test(
        "swift-service-lifecycle's graceful shutdown drains run(): waiters and new acquires fail, a lease finishes",
        .timeLimit(.minutes(1))
    )
    func gracefulShutdownFromServiceLifecycle() async throws {
        try await testGracefulShutdown { trigger in
            // run() starts inside the test kit's graceful-shutdown scope (the harness's task inherits it), as it does
            // under a ServiceGroup; nothing calls the pool's own triggerGracefulShutdown().
            let harness = try PoolHarness { $0.maximumSize = 1 }
            let held = try await harness.pool.lease()
            let waiter = Task { try await harness.pool.withResource { $0 } }
            try await harness.pool.waitForStatistics { $0.waiting == 1 }
            trigger.triggerGracefulShutdown()
            let waiterError = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
            #expect(waiterError?.code == .shutDown)
            let newError = await #expect(throws: ResourcePoolError.self) { try await harness.pool.withResource { $0 } }
            #expect(newError?.code == .shutDown)
            #expect(harness.factory.closed.isEmpty)  // the lease still out keeps its resource
            await held.release()
            try await harness.runTask.value
            #expect(harness.factory.closed == [MockResource(id: 1)])
            try await harness.pool.expectNoOutstandingLeases()
        }
    }

    @Test("a drain past its timeout ends run() and closes the late lease when it comes back")
    func drainTimeout() async throws {
        let harness = try PoolHarness { $0.drainTimeout = .seconds(5) }
        let lease = try await harness.pool.lease()
        harness.pool.triggerGracefulShutdown()
        // Rendezvous with the drain's deadline timer, then let it expire.
        let deadline = await harness.clock.nextSleep()
        #expect(deadline == ManualClock.Instant(offset: .seconds(5)))
        harness.clock.advance(by: .seconds(5))
        try await harness.runTask.value
        #expect(harness.factory.closed.isEmpty)
        await lease.release()
        #expect(harness.factory.closed == [MockResource(id: 1)])
    }

    @Test("cancelling run() forces shutdown: waiters fail, idle resources close, run() returns")
    func forcedShutdown() async throws {
        let harness = try PoolHarness { $0.maximumSize = 2 }
        let held = try await harness.pool.lease()
        let spare = try await harness.pool.lease()
        await spare.release()
        let other = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        harness.runTask.cancel()
        try await harness.runTask.value
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .shutDown)
        #expect(harness.factory.closed.isEmpty)
        await held.release()
        await other.release()
        #expect(Set(harness.factory.closed) == [MockResource(id: 1), MockResource(id: 2)])
    }

    @Test("run() cannot be called twice")
    func runTwice() async throws {
        let harness = try PoolHarness()
        _ = try await harness.pool.withResource { $0 }
        let error = await #expect(throws: ResourcePoolError.self) { try await harness.pool.run() }
        #expect(error?.code == .alreadyRunning)
        try await harness.shutdown()
    }
}
