import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool: waiting, FIFO, timeouts, cancellation, load shedding")
struct ResourcePoolWaitingTests {
    @Test("waiters get the resource in the order they asked")
    func fifo() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let held = try await harness.pool.lease()
        let order = LockedBox<[String]>([])
        var tasks: [Task<Void, any Error>] = []
        for (index, name) in ["first", "second", "third"].enumerated() {
            tasks.append(Task {
                try await harness.pool.withResource { _ in order.mutate { $0.append(name) } }
            })
            try await harness.pool.waitForStatistics { $0.waiting == index + 1 }
        }
        await held.release()
        for task in tasks { try await task.value }
        #expect(order.value == ["first", "second", "third"])
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
    }

    @Test("a waiter fails with a timeout error after its timeout, counted in stats and metrics")
    func timeout() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let held = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource(timeout: .seconds(2)) { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        harness.clock.advance(by: .seconds(2))
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("leased 1") == true)
        let stats = harness.pool.statistics
        #expect(stats.waiting == 0)
        #expect(stats.totals.timeouts == 1)
        #expect(harness.metrics.counter("db.client.connection.timeouts") == 1)
        await held.release()
        try await harness.shutdown()
    }

    @Test("the configured acquire timeout applies when the call passes none")
    func defaultTimeout() async throws {
        let harness = try PoolHarness {
            $0.maximumSize = 1
            $0.acquireTimeout = .seconds(1)
        }
        let held = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        harness.clock.advance(by: .milliseconds(999))
        #expect(harness.pool.statistics.waiting == 1)
        harness.clock.advance(by: .milliseconds(1))
        await #expect(throws: ResourcePoolError(.timeout, message: "")) { try await waiter.value }
        await held.release()
        try await harness.shutdown()
    }

    @Test("cancelling a waiting task removes it at once, leaks nothing, and keeps counters right")
    func cancellation() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let held = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        let afterCancel = try await harness.pool.waitForStatistics { $0.totals.cancellations == 1 }
        #expect(afterCancel.waiting == 0)
        #expect(afterCancel.leased == 1)
        await held.release()
        // The slot was not leaked: the resource comes back and serves the next caller at once.
        let resource = try await harness.pool.withResource { $0 }
        #expect(resource == MockResource(id: 1))
        let stats = harness.pool.statistics
        #expect(stats.leased == 0)
        #expect(stats.idle == 1)
        #expect(harness.metrics.counter("reservoir.pool.cancellations") == 1)
        #expect(harness.metrics.gauge("db.client.connection.pending_requests") == 0)
        try await harness.shutdown()
    }

    @Test("a task cancelled before it asks is not served and leaves nothing behind")
    func cancelledBeforeAsking() async throws {
        let harness = try PoolHarness { $0.maximumSize = 1 }
        let held = try await harness.pool.lease()
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await harness.pool.withResource { $0 }
        }
        await #expect(throws: CancellationError.self) { try await waiter.value }
        try await harness.pool.waitForStatistics { $0.waiting == 0 }
        await held.release()
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
    }

    @Test("with the waiter queue full, an acquire is rejected at once with tooManyWaiters")
    func loadShedding() async throws {
        let harness = try PoolHarness {
            $0.maximumSize = 1
            $0.maximumWaiters = 1
        }
        let held = try await harness.pool.lease()
        let waiter = Task { try await harness.pool.withResource { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 }
        let error = await #expect(throws: ResourcePoolError.self) { try await harness.pool.withResource { $0 } }
        #expect(error?.code == .tooManyWaiters)
        #expect(harness.metrics.counter("reservoir.pool.rejections", ["reason": "too_many_waiters"]) == 1)
        await held.release()
        _ = try await waiter.value
        try await harness.shutdown()
    }

    @Test("the pool grows on demand up to the maximum and no further")
    func growthToMaximum() async throws {
        let harness = try PoolHarness(
            {
                $0.maximumSize = 2
                $0.maximumConcurrentCreations = 2
            },
            creation: .manual
        )
        let done = LockedBox(0)
        var tasks: [Task<Void, any Error>] = []
        for _ in 0..<3 {
            tasks.append(Task { try await harness.pool.withResource { _ in done.mutate { $0 += 1 } } })
        }
        // Three waiters, but only two creations: the cap.
        try await harness.pool.waitForStatistics { $0.waiting == 3 && $0.creating == 2 }
        let first = await harness.factory.nextCreation()
        let second = await harness.factory.nextCreation()
        #expect(harness.factory.createCalls == 2)
        first.succeed()
        second.succeed()
        for task in tasks { try await task.value }
        #expect(done.value == 3)
        #expect(harness.factory.createCalls == 2)
        let stats = harness.pool.statistics
        #expect(stats.idle == 2)
        #expect(stats.totals.creations == 2)
        try await harness.shutdown()
    }
}
