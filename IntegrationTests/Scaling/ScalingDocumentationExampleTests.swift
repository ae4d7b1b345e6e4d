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

func makeFailoverPools() throws -> (writes: PostgresPool, reads: PostgresPool) {
    // Writes: the first host that accepts them. Reads: a standby when one is up, else any host.
    let hosts = "host=db-a,db-b port=5432,5432 dbname=app user=app connect_timeout=5"
    var writes = PostgresPool.Configuration(
        connection: try .init(connectionString: hosts + " target_session_attrs=read-write"),
        name: "orders-writes"
    )
    // New connections are tried again at most 1 s apart while no host accepts writes: this bounds how long after
    // a promotion the pool finds the new primary.
    writes.pool.creationBackoff = .exponential(initial: .milliseconds(50), maximum: .seconds(1))
    var reads = PostgresPool.Configuration(
        connection: try .init(connectionString: hosts + " target_session_attrs=prefer-standby"),
        name: "orders-reads"
    )
    reads.pool.maximumSize = 8
    return (try PostgresPool(configuration: writes), try PostgresPool(configuration: reads))
}

@Suite("docs/scaling.md examples")
struct ScalingDocumentationExampleTests {
    @Test("the PgBouncer example builds a pool with the transaction pooling mode")
    func pgbouncerExample() throws {
        let pool = try makePoolBehindPgBouncerInTransactionPooling(connectionString: "host=127.0.0.1 port=6432 dbname=app user=app")
        #expect(pool.configuration.pgbouncer == .transactionPooling)
    }

    @Test("the failover example builds a write pool that needs a primary and a read pool that prefers standbys")
    func failoverExample() throws {
        let (writes, reads) = try makeFailoverPools()
        #expect(writes.configuration.connection["target_session_attrs"] == "read-write")
        #expect(reads.configuration.connection["target_session_attrs"] == "prefer-standby")
        #expect(writes.configuration.pool.creationBackoff.maximum == .seconds(1))
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
