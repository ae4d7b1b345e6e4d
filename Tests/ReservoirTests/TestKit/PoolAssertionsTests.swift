import Reservoir
import ReservoirTestKit
import Synchronization
import Testing

@Suite("ResourcePool.waitForStatistics")
struct PoolAssertionsTests {
    @Test("waits for a waiter to queue, woken by the pool's changes of state, not by polling")
    func wokenByChanges() async throws {
        let harness = try PoolHarness({ $0.maximumSize = 1 }, creation: .manual)
        let checks = Atomic<Int>(0)
        let acquire = Task { try await harness.pool.withResource { $0 } }
        let stats = try await harness.pool.waitForStatistics { statistics in
            checks.add(1, ordering: .relaxed)
            return statistics.waiting == 1 && statistics.creating == 1
        }
        #expect(stats.waiting == 1)
        // One check at the start and one per change of the pool's state (run() starting, the acquire): a loop that
        // polled would have checked thousands of times.
        #expect(checks.load(ordering: .relaxed) <= 5)
        await harness.factory.nextCreation().succeed()
        #expect(try await acquire.value == MockResource(id: 1))
        try await harness.shutdown()
    }

    @Test("a condition that never holds throws ConditionNotReachedError after the timeout, with the last figures")
    func timesOut() async throws {
        let harness = try PoolHarness()
        let error = await #expect(throws: ConditionNotReachedError.self) {
            try await harness.pool.waitForStatistics(timeout: .milliseconds(20)) { $0.leased == 1 }
        }
        #expect(error?.lastStatistics.leased == 0)
        try await harness.shutdown()
    }

    @Test("a cancelled wait throws CancellationError")
    func cancelled() async throws {
        let harness = try PoolHarness()
        let wait = Task { try await harness.pool.waitForStatistics { $0.leased == 1 } }
        wait.cancel()
        await #expect(throws: CancellationError.self) { try await wait.value }
        try await harness.shutdown()
    }
}
