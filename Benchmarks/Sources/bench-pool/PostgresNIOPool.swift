import _ConnectionPoolModule
import Synchronization

/// postgres-nio's pool (`_ConnectionPoolModule` at 1.33.2) configured at its best for this test: every connection
/// preserved (`minimumConnectionCount` = soft = hard limit, so nothing is created or closed during a run), no
/// keep-alive, the no-op observability delegate, and its own `withConnection` (the `@inlinable` path that
/// `PostgresClient` uses).
final class PostgresNIOBenchPool: BenchPool {
    typealias Pool = ConnectionPool<
        BenchResource,
        Int,
        ConnectionIDGenerator,
        ConnectionRequest<BenchResource>,
        Int,
        NoOpKeepAliveBehavior<BenchResource>,
        NoOpConnectionPoolMetrics<Int>,
        ContinuousClock
    >

    let pool: Pool
    private let runTask: Task<Void, Never>

    init(resources: Int) {
        var configuration = ConnectionPoolConfiguration()
        configuration.minimumConnectionCount = resources
        configuration.maximumConnectionSoftLimit = resources
        configuration.maximumConnectionHardLimit = resources
        configuration.idleTimeout = .seconds(3600)
        let pool = Pool(
            configuration: configuration,
            idGenerator: ConnectionIDGenerator(),
            keepAliveBehavior: NoOpKeepAliveBehavior(connectionType: BenchResource.self),
            observabilityDelegate: NoOpConnectionPoolMetrics(connectionIDType: Int.self),
            clock: ContinuousClock()
        ) { id, _ in
            ConnectionAndMetadata(connection: BenchResource(id: id), maximalStreamsOnConnection: 1)
        }
        self.pool = pool
        self.runTask = Task { await pool.run() }
    }

    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        try await self.pool.withConnection(body)
    }

    func shutdown() async {
        self.runTask.cancel()
        await self.runTask.value
    }
}
