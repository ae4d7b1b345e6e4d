import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

/// The rate limit kept in PostgreSQL, shared by several pools (each stands for one instance of a service: its own
/// connections, its own limiter object, only the database in common).
extension ScalingLoadTests {
@Suite("PostgresRateLimiter shared by several instances")
struct SharedRateLimitTests {
    /// Measures the admitted rate over `window`, after `warmUp` (connections opened, the initial burst spent).
    static func measure(
        instances: Int,
        workersPerInstance: Int,
        configuration: PostgresRateLimiter.Configuration,
        warmUp: Duration = .milliseconds(500),
        window: Duration = .seconds(3),
        worker: @escaping @Sendable (PostgresRateLimiter, AdmissionLog, ContinuousClock.Instant) async throws -> Void
    ) async throws -> (admitted: Int, statistics: [PostgresRateLimiter.Statistics]) {
        let server = try await TestDatabase.server.value
        return try await ScalingTest.withPools(
            count: instances,
            connectionString: server.connection.unixSocketConnectionString,
            configure: { $0.pool.maximumSize = workersPerInstance }
        ) { pools in
            let limiters = try pools.map { try PostgresRateLimiter(pool: $0, configuration: configuration) }
            try await limiters[0].createTable()
            let log = AdmissionLog()
            let start = ContinuousClock.now + warmUp
            let end = start + window + .milliseconds(200)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for limiter in limiters {
                    for _ in 0..<workersPerInstance {
                        group.addTask { try await worker(limiter, log, end) }
                    }
                }
                try await group.waitForAll()
            }
            return (log.count(from: start, length: window), limiters.map(\.statistics))
        }
    }

    @Test("four instances waiting for permits one round trip each admit the shared rate within 2%")
    func exactModeHoldsTheRate() async throws {
        let rate = 200.0
        // Callers reserve ahead of time, so the schedule stays full even when the machine stalls the callers for a
        // while (up to about (callers + burst) / rate, 85 ms here); a small burst bounds what a longer stall lets
        // through at once afterwards.
        let configuration = PostgresRateLimiter.Configuration(
            key: TestDatabase.uniqueName("exact"), rate: rate, burst: 5)
        let (admitted, statistics) = try await Self.measure(
            instances: 4, workersPerInstance: 3, configuration: configuration
        ) { limiter, log, end in
            while ContinuousClock.now < end {
                try await limiter.acquire()
                log.record()
            }
        }
        let target = rate * 3
        let roundTrips = statistics.map(\.roundTrips).reduce(0, +)
        print("shared_rate_exact target=\(target) admitted=\(admitted) ratio=\(Double(admitted) / target) round_trips=\(roundTrips)")
        #expect(abs(Double(admitted) - target) <= 0.02 * target)
        #expect(statistics.allSatisfy { $0.cachedGrants == 0 })
    }

    @Test("four instances calling tryAcquire as fast as they can never admit more than the rate and the burst")
    func contendedTryAcquireNeverOverAdmits() async throws {
        let rate = 200.0
        let burst = 8
        let configuration = PostgresRateLimiter.Configuration(
            key: TestDatabase.uniqueName("contended"), rate: rate, burst: burst)
        let (admitted, statistics) = try await Self.measure(
            instances: 4, workersPerInstance: 1, configuration: configuration, window: .seconds(2)
        ) { limiter, log, end in
            while ContinuousClock.now < end {
                if try await limiter.tryAcquire() { log.record() }
            }
        }
        let target = rate * 2
        let roundTrips = statistics.map(\.roundTrips).reduce(0, +)
        print("shared_rate_contended target=\(target) admitted=\(admitted) ratio=\(Double(admitted) / target) round_trips=\(roundTrips)")
        // GCRA's bound over any window: the rate, plus a full bucket at its start, plus the permit at its edge.
        // (How close to the rate the callers get depends on how fast they can ask: on a loaded machine, less.)
        #expect(Double(admitted) <= target + Double(burst) + 1)
        #expect(Double(roundTrips) > Double(admitted))
    }

    @Test("four instances taking permits in batches of 5 admit the shared rate within 2% with a fifth of the round trips")
    func batchModeHoldsTheRate() async throws {
        let rate = 400.0
        let window = Duration.seconds(3)
        var configuration = PostgresRateLimiter.Configuration(
            key: TestDatabase.uniqueName("batched"), rate: rate, burst: 10, batchSize: 5)
        configuration.cachedPermitLifetime = .seconds(1)
        let (admitted, statistics) = try await Self.measure(
            instances: 4, workersPerInstance: 2, configuration: configuration, window: window
        ) { limiter, log, end in
            while ContinuousClock.now < end {
                try await limiter.acquire()
                log.record()
            }
        }
        let target = rate * 3
        let roundTrips = statistics.map(\.roundTrips).reduce(0, +)
        let cached = statistics.map(\.cachedGrants).reduce(0, +)
        let expired = statistics.map(\.expiredPermits).reduce(0, +)
        print("shared_rate_batched target=\(target) admitted=\(admitted) ratio=\(Double(admitted) / target) round_trips=\(roundTrips) cached_grants=\(cached) expired=\(expired)")
        #expect(abs(Double(admitted) - target) <= 0.02 * target)
        #expect(cached > 0)
        #expect(Double(roundTrips) < 0.4 * Double(cached + roundTrips))
    }

    @Test("a request that would miss its deadline takes nothing and throws rateLimited; an empty bucket refuses tryAcquire")
    func deadlineAndRefusal() async throws {
        let server = try await TestDatabase.server.value
        try await ScalingTest.withPools(count: 1, connectionString: server.connection.unixSocketConnectionString) { pools in
            var configuration = PostgresRateLimiter.Configuration(key: TestDatabase.uniqueName("slow"), rate: 1, burst: 2)
            configuration.tableName = TestDatabase.uniqueName("limits")  // created on demand
            let limiter = try PostgresRateLimiter(pool: pools[0], configuration: configuration)
            #expect(try await limiter.tryAcquire(permits: 2))
            #expect(try await !limiter.tryAcquire())
            await #expect {
                try await limiter.acquire(timeout: .milliseconds(100))
            } throws: { error in
                (error as? PostgresError)?.code == .rateLimited
            }
            // The refusals took nothing: the bucket still owes exactly the two permits granted.
            let owed = try await pools[0].query(PostgresQuery(
                unsafeSQL: "SELECT tat - checked_at FROM \(PostgresQuery.quoteIdentifier(configuration.tableName)) WHERE key = $1",
                bindings: { var bindings = PostgresBindings(); bindings.append(configuration.key); return bindings }()
            )).singleValue(Double.self) ?? 0
            #expect(owed > 1.5 && owed <= 2)
            await #expect {
                try await limiter.tryAcquire(permits: 3)
            } throws: { error in
                (error as? PostgresError)?.code == .invalidArgument
            }
        }
    }

    @Test("instances starting at once all create the missing table without failing")
    func concurrentTableCreation() async throws {
        let server = try await TestDatabase.server.value
        let tableName = TestDatabase.uniqueName("limits")
        try await ScalingTest.withPools(count: 4, connectionString: server.connection.unixSocketConnectionString) { pools in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for pool in pools {
                    group.addTask {
                        var configuration = PostgresRateLimiter.Configuration(key: "k", rate: 1000, burst: 10)
                        configuration.tableName = tableName
                        return try await PostgresRateLimiter(pool: pool, configuration: configuration).tryAcquire()
                    }
                }
                for try await granted in group { #expect(granted) }
            }
        }
    }
}
}
