import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

// The code of docs/scaling.md, compiled and run here.

func makePoolBehindPgBouncerInTransactionPooling(connectionString: String) throws -> PostgresPool {
    var configuration = PostgresPool.Configuration(
        connection: try .init(connectionString: connectionString),  // host=pgbouncer port=6432 …
        name: "orders"
    )
    configuration.pgbouncer = .transactionPooling  // statement cache off, no session reset, no startup options
    configuration.pool.maximumSize = 16
    return try PostgresPool(configuration: configuration)
}

func callPartnerAPI(pool: PostgresPool) async throws -> Bool {
    // 100 requests per second over every instance of the service, bursts of 20, 10 permits per round trip.
    let limiter = try PostgresRateLimiter(
        pool: pool,
        configuration: .init(key: "partner-api", rate: 100, burst: 20, batchSize: 10)
    )
    guard try await limiter.tryAcquire() else { return false }  // over the limit: answer 429
    try await limiter.acquire(timeout: .milliseconds(200))  // or wait for a permit, at most 200 ms
    return true
}

@Suite("docs/scaling.md examples")
struct ScalingDocumentationExampleTests {
    @Test("the PgBouncer example builds a pool with the transaction pooling mode")
    func pgbouncerExample() throws {
        let pool = try makePoolBehindPgBouncerInTransactionPooling(connectionString: "host=127.0.0.1 port=6432 dbname=app user=app")
        #expect(pool.configuration.pgbouncer == .transactionPooling)
    }

    @Test("the shared rate limit example takes permits")
    func rateLimitExample() async throws {
        let server = try await TestDatabase.server.value
        try await ScalingTest.withPools(count: 1, connectionString: server.connection.unixSocketConnectionString) {
            pools in
            let admitted = try await callPartnerAPI(pool: pools[0])
            #expect(admitted)
        }
    }
}
