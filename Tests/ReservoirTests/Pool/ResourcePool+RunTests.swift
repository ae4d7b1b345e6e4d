import Logging
import Reservoir
import ReservoirTestKit
import Testing

/// Acquires made before `run()` starts: they keep their deadline, and the "run() has not started" warning comes only
/// when `run()` is really missing.
@Suite("ResourcePool: acquiring before run() starts", .timeLimit(.minutes(1)))
struct ResourcePoolRunTests {
    /// A pool on a manual clock whose `run()` the test starts (or not).
    struct UnstartedPool {
        let pool: ResourcePool<MockResource, ManualClock>
        let clock = ManualClock()
        let logs = LogRecorder()

        init(acquireTimeout: Duration? = nil) throws {
            var configuration = ResourcePoolConfiguration(name: "test")
            configuration.maximumSize = 1
            configuration.idleTimeout = nil
            configuration.maximumLifetime = nil
            configuration.acquireTimeout = acquireTimeout
            self.pool = try ResourcePool(
                configuration: configuration,
                factory: MockResourceFactory().factory,
                clock: self.clock,
                jitter: .constant(0.5),
                logger: self.logs.logger
            )
        }

        /// Waits, yielding a bounded number of times, until `count` tasks sleep on the clock: a wait that has no
        /// timer fails the test instead of hanging it.
        func waitForSleepers(_ count: Int) async throws {
            let clock = self.clock
            try await self.pool.waitForStatistics { _ in clock.sleeperCount >= count }
        }

        var runWarnings: [LogRecorder.Entry] {
            self.logs.messages(at: .warning).filter { $0.message.contains("run() has not started") }
        }
    }

    @Test("an acquire with a timeout before run() fails with a timeout error at its deadline, naming run()")
    func timeoutWithoutRun() async throws {
        let unstarted = try UnstartedPool()
        let waiter = Task { try await unstarted.pool.withResource(timeout: .milliseconds(500)) { $0 } }
        try await unstarted.pool.waitForStatistics { $0.waiting == 1 }
        try await unstarted.waitForSleepers(1)
        unstarted.clock.advance(by: .milliseconds(499))
        #expect(unstarted.pool.statistics.waiting == 1)
        unstarted.clock.advance(by: .milliseconds(1))
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("run() has not started") == true)
        #expect(unstarted.pool.statistics.waiting == 0)
    }

    @Test("the configured acquire timeout bounds an acquire before run() too")
    func defaultTimeoutWithoutRun() async throws {
        let unstarted = try UnstartedPool(acquireTimeout: .seconds(3))
        let waiter = Task { try await unstarted.pool.withResource { $0 } }
        try await unstarted.pool.waitForStatistics { $0.waiting == 1 }
        try await unstarted.waitForSleepers(1)
        unstarted.clock.advance(by: .seconds(3))
        await #expect(throws: ResourcePoolError(.timeout, message: "")) { try await waiter.value }
        // The deadline passed with run() still missing: that is worth the warning too.
        #expect(unstarted.runWarnings.count == 1)
    }

    @Test("acquires whose run() never starts warn once, after the grace period in real time, and not before")
    func warnsWhenRunIsMissing() async throws {
        let unstarted = try UnstartedPool()
        let start = ContinuousClock.now
        let first = Task { try await unstarted.pool.withResource { $0 } }
        let second = Task { try await unstarted.pool.withResource { $0 } }
        try await unstarted.pool.waitForStatistics { $0.waiting == 2 }
        // A bounded wait for a real-time grace period: the one thing here that is not on the manual clock.
        while unstarted.runWarnings.isEmpty, start.duration(to: .now) < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(start.duration(to: .now) >= .seconds(1))
        #expect(unstarted.runWarnings.count == 1)
        first.cancel()
        second.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        await #expect(throws: CancellationError.self) { try await second.value }
        #expect(unstarted.runWarnings.count == 1)
        // Nothing of the waits is left sleeping on the pool's clock.
        #expect(unstarted.clock.sleeperCount == 0)
    }

    @Test("the documented pattern, run() in a task and an acquire at once, serves the acquire and logs no warning")
    func documentedPattern() async throws {
        let unstarted = try UnstartedPool()
        let pool = unstarted.pool
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The acquire queues before `run()` has started (the test waits for it), as it often does in real use.
            let waiter = Task { try await pool.withResource(timeout: .seconds(5)) { $0 } }
            try await pool.waitForStatistics { $0.waiting == 1 }
            group.addTask { try await pool.run() }
            #expect(try await waiter.value == MockResource(id: 1))
            #expect(unstarted.runWarnings.isEmpty)
            pool.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(unstarted.runWarnings.isEmpty)
    }
}

@Suite("ResourcePool: timeouts while a creation hangs, permanent creation failures")
struct ResourcePoolCreationFailureTests {
    @Test("an acquire that times out behind a creation that never finishes says so, not that the pool is undersized")
    func hangingCreation() async throws {
        let harness = try PoolHarness({ $0.maximumSize = 1 }, creation: .manual)
        let waiter = Task { try await harness.pool.withResource(timeout: .seconds(2)) { $0 } }
        try await harness.pool.waitForStatistics { $0.waiting == 1 && $0.creating == 1 }
        harness.clock.advance(by: .seconds(2))
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("is being created and has not finished after 2.0 seconds") == true)
        #expect(error?.message.contains("undersized") == false)
        harness.runTask.cancel()
    }

    struct Permanent: PermanentCreationFailure {
        var isPermanent: Bool { true }
    }

    @Test("a creation failure that says it is permanent opens the circuit breaker at the first failure")
    func permanentFailure() async throws {
        let harness = try PoolHarness({
            $0.maximumSize = 1
            $0.circuitBreakerThreshold = 5
        }, creation: .manual)
        let waiter = Task { try await harness.pool.withResource(timeout: .seconds(30)) { $0 } }
        await harness.factory.nextCreation().fail(Permanent())
        let error = await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(error?.code == .circuitBreakerOpen)
        #expect(error?.underlying is Permanent)
        #expect(harness.pool.statistics.totals.creationFailures == 1)
        harness.runTask.cancel()
    }
}
