import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Synchronization
import Testing

/// The tests that load the machine (many pools, thousands of statements per second, rates measured against the
/// clock), one after the other so that they do not disturb each other's figures.
@Suite("Scaling under load", .serialized)
enum ScalingLoadTests {}

/// Several pools at once, as several instances of a service would have.
enum ScalingTest {
    /// Creates `count` pools with the same settings (each its own name), runs them, runs `body`, and shuts them all
    /// down, also when `body` throws.
    static func withPools<Result: Sendable>(
        count: Int,
        connectionString: String,
        configure: (inout PostgresPool.Configuration) throws -> Void = { _ in },
        _ body: ([PostgresPool]) async throws -> Result
    ) async throws -> Result {
        var pools: [PostgresPool] = []
        for _ in 0..<count {
            var configuration = PostgresPool.Configuration(
                connection: try .init(connectionString: connectionString),
                name: TestDatabase.uniqueName("instance")
            )
            configuration.pool.acquireTimeout = .seconds(20)
            configuration.pool.creationBackoff = .exponential(initial: .milliseconds(10), maximum: .milliseconds(200))
            try configure(&configuration)
            pools.append(try PostgresPool(configuration: configuration, logger: Logger(label: "scaling-test")))
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for pool in pools { group.addTask { try await pool.run() } }
            do {
                let result = try await body(pools)
                for pool in pools { pool.triggerGracefulShutdown() }
                try await group.waitForAll()
                return result
            } catch {
                for pool in pools { pool.triggerGracefulShutdown() }
                group.cancelAll()
                throw error
            }
        }
    }
}

/// Instants at which something was admitted, collected from many tasks.
final class AdmissionLog: Sendable {
    private let instants = Mutex<[ContinuousClock.Instant]>([])

    func record(_ instant: ContinuousClock.Instant = .now) { instants.withLock { $0.append(instant) } }

    /// How many admissions fell in `[start, start + length)`.
    func count(from start: ContinuousClock.Instant, length: Duration) -> Int {
        let end = start + length
        return instants.withLock { $0.count { $0 >= start && $0 < end } }
    }

    var total: Int { instants.withLock { $0.count } }
}
