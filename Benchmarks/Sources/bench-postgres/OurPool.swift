// Reservoir's PostgresPool: at most 8 connections, the point select through the pool's query API (prepared once
// per connection by the driver's statement cache).
import Logging
import PostgresPool
import ResourcePool

final class OurPoolRunner: Sendable {
    let pool: PostgresPool

    init(connectionString: String, connections: Int) throws {
        var configuration = PostgresPool.Configuration(
            connection: try .init(connectionString: connectionString), name: "bench")
        configuration.pool.minimumSize = connections
        configuration.pool.maximumSize = connections
        configuration.pool.maximumConcurrentCreations = connections
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        pool = try PostgresPool(configuration: configuration, logger: logger)
    }

    func run() async throws { try await pool.run() }

    func shutdown() { pool.triggerGracefulShutdown() }

    @inline(never)
    func select(aid: Int32) async throws -> Int32 {
        let rows = try await pool.query("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)")
        return try rows.singleValue(Int32.self) ?? 0
    }

    /// Ten point selects in one round trip (pipeline mode), one leased connection.
    @inline(never)
    func selectBatch(aids: [Int32], mode: PostgresPipelineMode) async throws -> Int32 {
        let queries: [PostgresQuery] = aids.map { "SELECT abalance FROM pgbench_accounts WHERE aid = \($0)" }
        var sum: Int32 = 0
        for result in try await pool.pipeline(queries, mode: mode) {
            sum &+= try result.get().singleValue(Int32.self) ?? 0
        }
        return sum
    }
}
