import Logging
import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool: sizing, lifetime, hooks, keep-alive, invalidation")
struct ResourcePoolHealthTests {
    @Test("the minimum is created at start, and the pool shrinks back to it after the idle timeout")
    func shrinkToMinimum() async throws {
        let harness = try PoolHarness {
            $0.minimumSize = 1
            $0.maximumSize = 3
            $0.idleTimeout = .seconds(60)
        }
        try await harness.pool.waitForStatistics { $0.idle == 1 }
        let first = try await harness.pool.lease()
        let second = try await harness.pool.lease()
        let third = try await harness.pool.lease()
        await first.release()
        await second.release()
        await third.release()
        #expect(harness.pool.statistics.idle == 3)
        harness.clock.advance(by: .seconds(60))
        let stats = try await harness.pool.waitForStatistics { $0.idle == 1 && $0.closing == 0 }
        #expect(stats.totals.evictions["idle_timeout"] == 2)
        #expect(harness.factory.closed.count == 2)
        try await harness.shutdown()
    }

    @Test("a resource is replaced at its jittered maximum lifetime, not before")
    func maximumLifetimeWithJitter() async throws {
        // Lifetime 100 s shortened by 0.5 × (0.5 × 100 s): the resource expires at 75 s.
        let harness = try PoolHarness(
            {
                $0.minimumSize = 1
                $0.maximumLifetime = .seconds(100)
                $0.maximumLifetimeJitter = 0.5
            },
            jitter: .constant(0.5)
        )
        try await harness.pool.waitForStatistics { $0.idle == 1 }
        harness.clock.advance(by: .seconds(74))
        #expect(try await harness.pool.withResource { $0 } == MockResource(id: 1))
        harness.clock.advance(by: .seconds(1))
        let stats = try await harness.pool.waitForStatistics { $0.totals.creations == 2 && $0.idle == 1 }
        #expect(stats.totals.evictions["max_lifetime"] == 1)
        #expect(harness.factory.closed == [MockResource(id: 1)])
        #expect(try await harness.pool.withResource { $0 } == MockResource(id: 2))
        try await harness.shutdown()
    }

    @Test("a resource failing validation is replaced without the caller seeing it")
    func validationFailureIsTransparent() async throws {
        let contexts = LockedBox<[ResourceValidationContext]>([])
        let hooks = ResourcePoolHooks<MockResource>(beforeLease: { resource, context in
            contexts.mutate { $0.append(context) }
            return resource.id != 1
        })
        let harness = try PoolHarness({ $0.validation = .always }, hooks: hooks)
        let resource = try await harness.pool.withResource { $0 }
        #expect(resource == MockResource(id: 2))
        let stats = harness.pool.statistics
        #expect(stats.totals.validationFailures == 1)
        #expect(stats.totals.acquisitions == 1)
        #expect(harness.metrics.counter("reservoir.pool.validation_failures") == 1)
        #expect(harness.metrics.counter("reservoir.pool.evictions", ["reason": "validation_failed"]) == 1)
        #expect(contexts.value.count == 2)
        #expect(contexts.value.allSatisfy { !$0.validationRequested && $0.useCount == 0 })
        try await harness.shutdown()
        #expect(harness.factory.closed.contains(MockResource(id: 1)))
    }

    @Test("validation runs only when idle long enough, or for everyone after requestIdleValidation")
    func validationPolicyAndRequest() async throws {
        let validated = LockedBox<[Bool]>([])
        let hooks = ResourcePoolHooks<MockResource>(beforeLease: { _, context in
            validated.mutate { $0.append(context.validationRequested) }
            return true
        })
        let harness = try PoolHarness({ $0.validation = .ifIdle(atLeast: .seconds(5)) }, hooks: hooks)
        _ = try await harness.pool.withResource { $0 }
        _ = try await harness.pool.withResource { $0 }
        #expect(validated.value == [])
        harness.clock.advance(by: .seconds(5))
        _ = try await harness.pool.withResource { $0 }
        #expect(validated.value == [false])
        harness.pool.requestIdleValidation()
        _ = try await harness.pool.withResource { $0 }
        #expect(validated.value == [false, true])
        try await harness.shutdown()
    }

    @Test("the after-release hook sees the site and the broken mark, and can discard the resource")
    func afterReleaseHook() async throws {
        let seen = LockedBox<[ResourceReleaseContext]>([])
        let hooks = ResourcePoolHooks<MockResource>(afterRelease: { resource, context in
            seen.mutate { $0.append(context) }
            return resource.id == 1 ? .keep : .discard
        })
        let harness = try PoolHarness(hooks: hooks)
        let lease = try await harness.pool.lease()
        await lease.release(discarding: true)
        // Marked broken: closed even though the hook said keep.
        let next = try await harness.pool.withResource { $0 }
        #expect(next == MockResource(id: 2))
        // The hook discards resource 2.
        let third = try await harness.pool.withResource { $0 }
        #expect(third == MockResource(id: 3))
        #expect(seen.value.map(\.markedBroken) == [true, false, false])
        #expect(seen.value.allSatisfy { "\($0.acquireSite)".contains("ResourcePool+HealthTests.swift") })
        // Resource 1 was marked broken; the hook discarded 2 and 3.
        let stats = harness.pool.statistics
        #expect(stats.totals.evictions["discarded"] == 3)
        try await harness.shutdown()
    }

    @Test("a throwing after-release hook discards the resource and is counted, never crashing")
    func throwingHook() async throws {
        struct ResetFailed: Error {}
        let hooks = ResourcePoolHooks<MockResource>(afterRelease: { _, _ in throw ResetFailed() })
        let harness = try PoolHarness(hooks: hooks)
        _ = try await harness.pool.withResource { $0 }
        let stats = try await harness.pool.waitForStatistics { $0.totals.hookFailures == 1 }
        #expect(stats.totals.evictions["discarded"] == 1)
        #expect(harness.metrics.counter("reservoir.pool.hook_failures", ["hook": "after_release"]) == 1)
        #expect(harness.logs.messages(at: .warning).contains { $0.message.contains("after-release hook threw") })
        try await harness.shutdown()
    }

    @Test("a discardAndValidateIdle decision flags every idle resource for validation")
    func discardAndValidateIdle() async throws {
        let requested = LockedBox<[Bool]>([])
        let hooks = ResourcePoolHooks<MockResource>(
            beforeLease: { _, context in
                requested.mutate { $0.append(context.validationRequested) }
                return true
            },
            afterRelease: { resource, _ in resource.id == 1 ? .discardAndValidateIdle : .keep }
        )
        let harness = try PoolHarness({ $0.validation = .never }, hooks: hooks)
        let one = try await harness.pool.lease()
        let two = try await harness.pool.lease()
        await two.release()
        await one.release()
        _ = try await harness.pool.withResource { $0 }
        #expect(requested.value == [true])
        try await harness.shutdown()
    }

    @Test("keep-alive checks idle resources on the interval and replaces the ones that fail")
    func keepAlive() async throws {
        struct Dead: Error {}
        let checked = LockedBox<[Int]>([])
        let hooks = ResourcePoolHooks<MockResource>(keepAlive: { resource in
            checked.mutate { $0.append(resource.id) }
            if resource.id == 1 { throw Dead() }
        })
        let harness = try PoolHarness(
            {
                $0.minimumSize = 1
                $0.keepAliveInterval = .seconds(30)
            },
            hooks: hooks
        )
        try await harness.pool.waitForStatistics { $0.idle == 1 }
        harness.clock.advance(by: .seconds(30))
        let stats = try await harness.pool.waitForStatistics { $0.totals.creations == 2 && $0.idle == 1 }
        #expect(stats.totals.evictions["keep_alive_failed"] == 1)
        #expect(checked.value == [1])
        try await harness.shutdown()
    }

    @Test("invalidateAll replaces idle resources now and leased ones when they come back")
    func invalidateAll() async throws {
        let harness = try PoolHarness {
            $0.minimumSize = 2
            $0.maximumSize = 4
        }
        try await harness.pool.waitForStatistics { $0.idle == 2 }
        let lease = try await harness.pool.lease()
        let leased = lease.resource
        harness.pool.invalidateAll()
        try await harness.pool.waitForStatistics { $0.closing == 0 && $0.totals.creations == 3 }
        #expect(harness.factory.closed.count == 1)
        await lease.release()
        let stats = try await harness.pool.waitForStatistics {
            $0.closing == 0 && $0.idle == 2 && $0.totals.creations == 4
        }
        #expect(stats.totals.evictions["invalidated"] == 2)
        #expect(harness.factory.closed.contains(leased))
        let fresh = try await harness.pool.withResource { $0 }
        #expect(fresh.id > 2)
        try await harness.shutdown()
    }
}
