import Reservoir
import ReservoirTestKit
import Testing

/// Acquire and release run in the calling task under the pool's lock, on whatever threads the callers run on. These
/// tests drive them from many tasks at once, with cancellations racing the hand-offs, and check the invariants that a
/// race would break. They assert what happened, never how long it took.
@Suite("ResourcePool: acquire and release from many tasks at once")
struct ResourcePoolConcurrencyTests {
    /// What the tasks observed.
    struct Tally: Sendable {
        var inUse: Set<Int> = []
        var sharedUses = 0
        var completed = 0
        var cancelled = 0
    }

    @Test(
        "many tasks leasing and cancelling never share a resource, and every lease and cancellation is counted once",
        arguments: 0..<4
    )
    func manyTasks(round: Int) async throws {
        let harness = try PoolHarness { $0.maximumSize = 3 }
        let tally = LockedBox(Tally())

        @Sendable func use() async throws {
            try await harness.pool.withResource { resource in
                let fresh = tally.mutate { $0.inUse.insert(resource.id).inserted }
                if !fresh { tally.mutate { $0.sharedUses += 1 } }
                // Hold it across a suspension, so that other tasks queue up behind it.
                await Task.yield()
                tally.mutate { _ = $0.inUse.remove(resource.id) }
            }
        }

        await withTaskGroup(of: Void.self) { group in
            // Steady users: 24 tasks of 100 leases each.
            for _ in 0..<24 {
                group.addTask {
                    for _ in 0..<100 {
                        do {
                            try await use()
                            tally.mutate { $0.completed += 1 }
                        } catch {
                            Issue.record("a steady user failed: \(error)")
                        }
                    }
                }
            }
            // Impatient users: each is cancelled while it waits or just after it was served.
            for index in 0..<200 {
                group.addTask {
                    let task = Task {
                        try await use()
                    }
                    for _ in 0..<(index % 3) { await Task.yield() }
                    task.cancel()
                    do {
                        try await task.value
                        tally.mutate { $0.completed += 1 }
                    } catch is CancellationError {
                        tally.mutate { $0.cancelled += 1 }
                    } catch {
                        Issue.record("an impatient user failed with \(error)")
                    }
                }
            }
        }

        let observed = tally.value
        #expect(observed.sharedUses == 0)
        #expect(observed.completed + observed.cancelled == 24 * 100 + 200)
        #expect(observed.completed >= 24 * 100)
        let stats = harness.pool.statistics
        #expect(stats.totals.acquisitions == observed.completed)
        #expect(stats.totals.cancellations == observed.cancelled)
        #expect(stats.leased == 0)
        #expect(stats.waiting == 0)
        #expect(stats.idle <= 3)
        #expect(harness.metrics.counter("reservoir.pool.cancellations") == Int64(observed.cancelled))
        // Metrics are recorded after the lock is released, by many threads in any order; the gauges still end on the
        // pool's figures, and every wait (with a lease or cancelled) is recorded once.
        let state = "db.client.connection.state"
        #expect(harness.metrics.gauge("db.client.connection.count", [state: "used"]) == 0)
        #expect(harness.metrics.gauge("db.client.connection.count", [state: "idle"]) == Double(stats.idle))
        #expect(harness.metrics.gauge("db.client.connection.pending_requests") == 0)
        #expect(
            harness.metrics.timerValues("db.client.connection.wait_time").count
                == observed.completed + observed.cancelled
        )
        try await harness.pool.expectNoOutstandingLeases()
        try await harness.shutdown()
    }
}
