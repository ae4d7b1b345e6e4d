import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

// The examples of docs/postgres.md ("The pool: PostgresPool"), verbatim, and a test that runs them.

// docs: configuration
func makeOrdersPool(connectionString: String, logger: Logger) throws -> PostgresPool {
    var configuration = PostgresPool.Configuration(
        connection: try .init(connectionString: connectionString),
        name: "orders"  // metrics, logs, and application_name in pg_stat_activity
    )
    configuration.pool.minimumSize = 2
    configuration.pool.maximumSize = 8
    configuration.pool.acquireTimeout = .seconds(2)
    configuration.statementTimeout = .seconds(5)
    configuration.pool.validation = .ifIdle(atLeast: .seconds(1))
    configuration.cancellationGracePeriod = .seconds(2)
    return try PostgresPool(configuration: configuration, logger: logger)
}

// docs: transaction
func transfer(pool: PostgresPool, amount: Int32, from: Int32, to: Int32) async throws {
    try await pool.withTransaction { transaction in
        try await transaction.execute("UPDATE accounts SET balance = balance - \(amount) WHERE id = \(from)")
        try await transaction.execute("UPDATE accounts SET balance = balance + \(amount) WHERE id = \(to)")
    }
}

// docs: pinned
/// One request of a service that mostly waits on the database: its statements continue on the I/O thread that read
/// their answers.
func orderSummary(pool: PostgresPool, customer: Int32) async throws -> (orders: Int64, total: Int64) {
    try await pool.withPinnedExecution {
        let orders = try await pool.query("SELECT count(*) FROM orders WHERE customer = \(customer)")
            .singleValue(Int64.self) ?? 0
        let total = try await pool.query("SELECT coalesce(sum(amount), 0)::int8 FROM orders WHERE customer = \(customer)")
            .singleValue(Int64.self) ?? 0
        return (orders, total)
    }
}

// docs: timeouts
enum BalanceLookup: Equatable {
    case balance(Int32?)
    case busy  // no connection within the acquire timeout
    case slow  // the statement ran past its statement_timeout
}

func lookUpBalance(pool: PostgresPool, id: Int32) async throws -> BalanceLookup {
    do {
        let rows = try await pool.query(
            "SELECT balance FROM accounts WHERE id = \(id)",
            statementTimeout: .milliseconds(500)
        )
        return .balance(try rows.singleValue(Int32.self))
    } catch let error as ResourcePoolError where error.code == .timeout {
        return .busy
    } catch let error as PostgresError where error.code == .statementTimeout {
        return .slow
    }
}

// docs: pgbouncer
func makePoolBehindPgBouncer(connectionString: String) throws -> PostgresPool {
    var connection = try PostgresConnection.Configuration(connectionString: connectionString)
    connection.statementCacheCapacity = 0  // transaction pooling: no named prepared statements
    var configuration = PostgresPool.Configuration(connection: connection, name: "via-pgbouncer")
    configuration.pool.maximumSize = 20  // PgBouncer multiplexes; its own pool size bounds the server
    return try PostgresPool(configuration: configuration)
}

@Suite("docs/postgres.md pool examples")
struct PoolDocumentationExampleTests {
    @Test("the documented pool setup, transaction, pinned request, timeout handling and PgBouncer settings work")
    func examplesRun() async throws {
        let server = try await TestDatabase.server.value
        let connectionString = server.connection.unixSocketConnectionString
        let pool = try makeOrdersPool(connectionString: connectionString, logger: Logger(label: "docs"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            // The documented 2 s acquire timeout is for a warm pool: when the whole suite starts at once on two cores,
            // opening the first connections can take longer (seen in a full run), so the first acquire waits longer.
            try await pool.execute("SELECT 1", timeout: .seconds(30))
            try await pool.execute("DROP TABLE IF EXISTS accounts")
            try await pool.execute("CREATE TABLE accounts (id int4 PRIMARY KEY, balance int4 NOT NULL)")
            try await pool.execute("INSERT INTO accounts VALUES (1, 100), (2, 0)")
            try await transfer(pool: pool, amount: 30, from: 1, to: 2)
            let first = try await lookUpBalance(pool: pool, id: 1)
            let second = try await lookUpBalance(pool: pool, id: 2)
            #expect(first == .balance(70))
            #expect(second == .balance(30))
            try await pool.execute("DROP TABLE accounts")
            try await pool.execute("DROP TABLE IF EXISTS orders")
            try await pool.execute("CREATE TABLE orders (customer int4 NOT NULL, amount int8 NOT NULL)")
            try await pool.execute("INSERT INTO orders VALUES (7, 10), (7, 32), (8, 5)")
            let summary = try await orderSummary(pool: pool, customer: 7)
            #expect(summary.orders == 2)
            #expect(summary.total == 42)
            try await pool.execute("DROP TABLE orders")
            pool.triggerGracefulShutdown()
            try await group.waitForAll()
        }

        let bouncerStyle = try makePoolBehindPgBouncer(connectionString: connectionString)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await bouncerStyle.run() }
            let cached = try await bouncerStyle.withConnection { connection in
                _ = try await connection.query("SELECT \(Int32(1))")
                return connection.cachedStatementCount
            }
            #expect(cached == 0)
            bouncerStyle.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}
