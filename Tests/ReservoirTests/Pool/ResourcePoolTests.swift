import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool: acquire and release")
struct ResourcePoolTests {
    @Test("withResource creates a resource on demand, returns it, and reuses it")
    func withResourceReuses() async throws {
        let harness = try PoolHarness()
        let first = try await harness.pool.withResource { $0 }
        let second = try await harness.pool.withResource { $0 }
        #expect(first == MockResource(id: 1))
        #expect(second == first)
        #expect(harness.factory.createCalls == 1)
        let stats = harness.pool.statistics
        #expect(stats.idle == 1)
        #expect(stats.leased == 0)
        #expect(stats.totals.acquisitions == 2)
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
        #expect(harness.factory.closed == [MockResource(id: 1)])
    }

    @Test("an explicit lease holds the resource until release")
    func explicitLease() async throws {
        let harness = try PoolHarness()
        let lease = try await harness.pool.lease()
        #expect(lease.resource == MockResource(id: 1))
        #expect(harness.pool.statistics.leased == 1)
        await #expect(throws: OutstandingLeasesError.self) { try await harness.pool.expectNoOutstandingLeases() }
        await lease.release()
        #expect(harness.pool.statistics.leased == 0)
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
    }

    @Test("withResource returns the resource when the body throws, and rethrows")
    func bodyThrows() async throws {
        struct Boom: Error {}
        let harness = try PoolHarness()
        await #expect(throws: Boom.self) {
            try await harness.pool.withResource { _ in throw Boom() }
        }
        let stats = harness.pool.statistics
        #expect(stats.leased == 0)
        #expect(stats.idle == 1)
        try await harness.shutdown()
    }
}

/// An actor that uses the pool from its own isolation: the body runs on the actor and may touch its state.
actor PoolUser {
    let pool: ResourcePool<MockResource, ManualClock>
    var seen: [MockResource] = []

    init(pool: ResourcePool<MockResource, ManualClock>) {
        self.pool = pool
    }

    func use() async throws -> Int {
        try await self.pool.withResource { resource in
            self.seen.append(resource)  // isolated to this actor: no Sendable requirement on the body
            return self.seen.count
        }
    }
}

@Suite("ResourcePool: isolation")
struct ResourcePoolIsolationTests {
    @Test("withResource runs its body in the caller's isolation")
    func bodyRunsInCallerIsolation() async throws {
        let harness = try PoolHarness()
        let user = PoolUser(pool: harness.pool)
        #expect(try await user.use() == 1)
        #expect(try await user.use() == 2)
        #expect(await user.seen == [MockResource(id: 1), MockResource(id: 1)])
        try await harness.shutdown()
    }
}
