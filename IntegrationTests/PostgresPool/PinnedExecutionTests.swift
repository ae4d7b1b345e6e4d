import Foundation
import Glibc
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Synchronization
import Testing

/// `pool.taskExecutor` and `pool.withPinnedExecution`: tasks that prefer the PostgreSQL I/O threads.
@Suite("PostgresPool: tasks on the I/O threads")
struct PinnedExecutionTests {
    /// The calling thread's name, as the kernel has it.
    static func threadName() -> String {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return name.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a pinned task resumes after every statement on an I/O thread; an unpinned one does not")
    func resumesOnTheIOThread() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 2 }) { pool in
            let pinned = try await pool.withPinnedExecution {
                var threads: Set<String> = []
                var sum = 0
                for index in 0..<50 {
                    sum += try await pool.query("SELECT \(index)::int8").singleValue(Int.self) ?? 0
                    threads.insert(Self.threadName())
                    try await pool.withTransaction { transaction in
                        try await transaction.execute("SELECT 1")
                    }
                    threads.insert(Self.threadName())
                }
                return (sum, threads)
            }
            #expect(pinned.0 == 1225)
            #expect(pinned.1 == ["reservoir-pg-io"])

            // The same loop from a plain task continues on Swift's cooperative pool.
            let unpinned = try await Task.detached {
                var threads: Set<String> = []
                for index in 0..<20 {
                    _ = try await pool.query("SELECT \(index)::int8")
                    threads.insert(Self.threadName())
                }
                return threads
            }.value
            #expect(!unpinned.contains("reservoir-pg-io"))
        }
    }

    @Test("more pinned tasks than connections: every task is served, in turn, and the pool ends with nothing leased")
    func moreTasksThanConnections() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 2 }) { pool in
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for task in 0..<16 {
                    group.addTask(executorPreference: pool.taskExecutor) {
                        var sum = 0
                        for index in 0..<20 {
                            sum += try await pool.query("SELECT \(task * 100 + index)::int8").singleValue(Int.self) ?? 0
                        }
                        return sum
                    }
                }
                var total = 0
                for try await sum in group { total += sum }
                return total
            }
            let expected = (0..<16).reduce(0) { sum, task in sum + (0..<20).reduce(0) { $0 + task * 100 + $1 } }
            #expect(total == expected)
            #expect(pool.statistics.pool.leased == 0)
        }
    }

    @Test("a pinned task waiting for a connection times out with the pool's error, and one cancelled mid-statement stops it on the server")
    func timeoutsAndCancellation() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }) { pool in
            let name = pool.configuration.applicationName
            let sleeper = Task {
                try await pool.withPinnedExecution { try await pool.query("SELECT pg_sleep(60)") }
            }
            try await PoolTest.waitOnServer(
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")

            // The only connection is busy: a pinned waiter gets the pool's timeout, not a hang.
            let waiter = await #expect(throws: ResourcePoolError.self) {
                try await pool.withPinnedExecution {
                    try await pool.query("SELECT 1", timeout: .milliseconds(50))
                }
            }
            #expect(waiter?.code == .timeout)

            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            let value = try await pool.withPinnedExecution {
                try await pool.query("SELECT \(Int32(7))").singleValue(Int32.self)
            }
            #expect(value == 7)
            #expect(pool.statistics.cancellationsReused == 1)
        }
    }

    /// A `@MainActor` caller whose body captures and mutates main-actor state (it must compile, and run on the actor).
    @MainActor
    static func readOnTheMainActor(_ pool: PostgresPool) async throws -> [Int32] {
        var seen: [Int32] = []
        try await pool.withPinnedExecution {
            for index in Int32(0)..<3 {
                seen.append(try await pool.query("SELECT \(index)").singleValue(Int32.self) ?? -1)
                MainActor.assertIsolated()
            }
        }
        return seen
    }

    @Test("a @MainActor caller passes a body that touches its state; the body runs on the main actor")
    func mainActorCaller() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }) { pool in
            let seen = try await Self.readOnTheMainActor(pool)
            #expect(seen == [0, 1, 2])
        }
    }

    /// Counters shared between the test and a task that yields on the I/O threads.
    final class Progress: Sendable {
        let yields = Atomic<Int>(0)
        let answered = Atomic<Bool>(false)
    }

    @Test("a pinned task that keeps yielding does not keep the I/O thread from reading other connections' answers")
    func yieldingTaskDoesNotStarveTheSockets() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 2 }) { pool in
            _ = try await pool.query("SELECT 1")  // a connection is open and has joined its I/O thread
            let progress = Progress()
            // Bounded: if the I/O thread only ran jobs while any were queued, the answer below would be read only
            // once this loop gave up, and the task would report that it never saw it.
            let spinner = Task(executorPreference: pool.taskExecutor) {
                var rounds = 0
                while !progress.answered.load(ordering: .acquiring), rounds < 5_000_000 {
                    progress.yields.add(1, ordering: .relaxed)
                    await Task.yield()
                    rounds += 1
                }
                return progress.answered.load(ordering: .acquiring)
            }
            while progress.yields.load(ordering: .relaxed) == 0 { await Task.yield() }
            let value = try await pool.query("SELECT 42::int8 FROM pg_sleep(0.05)").singleValue(Int.self)
            progress.answered.store(true, ordering: .releasing)
            #expect(value == 42)
            #expect(await spinner.value, "the answer was read only after the yielding task gave up")
        }
    }
}
