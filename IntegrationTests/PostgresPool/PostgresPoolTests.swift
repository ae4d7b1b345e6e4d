import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Testing

@Suite("PostgresPool against a real server")
struct PostgresPoolTests {
    @Test("the query API on the pool runs statements, transactions and pipelines")
    func queryAPI() async throws {
        let table = TestDatabase.uniqueName("accounts")
        try await PoolTest.withPool { pool in
            try await pool.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (id int4 PRIMARY KEY, balance int4)"))
            _ = try await pool.withTransaction { transaction in
                try await transaction.execute(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ($1, $2)", bindings: {
                    var bindings = PostgresBindings()
                    bindings.append(Int32(1))
                    bindings.append(Int32(100))
                    return bindings
                }()))
            }
            let rows = try await pool.query(PostgresQuery(unsafeSQL: "SELECT balance FROM \(table) WHERE id = 1"))
            #expect(try rows.singleValue(Int32.self) == 100)
            let results = try await pool.pipeline(["SELECT \(Int32(1))", "SELECT 1/0", "SELECT \(Int32(3))"])
            #expect(try results[0].get().singleValue(Int32.self) == 1)
            #expect(throws: PostgresError.self) { try results[1].get() }
            #expect(try results[2].get().singleValue(Int32.self) == 3)
            try await pool.execute(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"))
        }
    }

    @Test("pipelines run cached statements prepared, and a failed prepare is not left in the cache")
    func pipelinesUsePreparedStatements() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }) { pool in
            for _ in 0..<2 {
                let results = try await pool.pipeline([
                    "SELECT \(Int32(1))", "SELECT \(Int32(2))", "SELEC 1", "SELECT 1 / \(Int32(0))",
                ])
                #expect(try results[0].get().singleValue(Int32.self) == 1)
                #expect(try results[1].get().singleValue(Int32.self) == 2)
                #expect((try? results[2].get()) == nil)
                #expect((try? results[3].get()) == nil)
                let cached = try await pool.withConnection { $0.cachedStatementCount }
                #expect(cached == 2)  // SELECT $1 and SELECT 1 / $1; not the syntax error
            }
            let prepared = try await pool.query("SELECT count(*)::int4 FROM pg_prepared_statements").singleValue(Int32.self)
            #expect(prepared == 3)  // the two above and this statement
        }
    }

    @Test("a lease returned inside a transaction is rolled back before the next caller, and counted with its site")
    func dirtyReturnInTransaction() async throws {
        let table = TestDatabase.uniqueName("dirty")
        let logs = LogCapture()
        let metrics = RecordingMetricsFactory()
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }, logs: logs, metrics: metrics) { pool in
            try await pool.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (id int4)"))
            let firstBackend = try await pool.withConnection { connection in  // the dirty site
                try await connection.execute("BEGIN")
                try await connection.execute(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (1)"))
                return connection.backendProcessID
            }
            let dirtyLine = #line - 5
            try await pool.withConnection { connection in
                #expect(connection.backendProcessID == firstBackend)  // rolled back, not replaced
                #expect(connection.transactionStatus == .idle)
                let count = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int4 FROM \(table)"))
                #expect(try count.singleValue(Int32.self) == 0)
            }
            let site = "ReservoirIntegrationTests/PostgresPoolTests.swift:\(dirtyLine)"
            #expect(pool.statistics.dirtyReturns == 1)
            #expect(pool.statistics.dirtyReturnsBySite == [site: 1])
            #expect(metrics.counter("reservoir.postgres.dirty_returns", ["state": "in_transaction", "lease.site": site]) == 1)
            let warnings = logs.records(atLeast: .warning).filter { $0.message.contains("dirty") }
            #expect(warnings.count == 1)
            #expect(warnings.first?.metadata["lease.site"]?.hasPrefix(site) == true)
            try await pool.execute(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"))
        }
    }

    @Test("a lease returned inside a failed transaction never reaches the next caller in that state")
    func dirtyReturnInFailedTransaction() async throws {
        let metrics = RecordingMetricsFactory()
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }, metrics: metrics) { pool in
            let firstBackend = try await pool.withConnection { connection in
                try await connection.execute("BEGIN")
                await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1/0") }
                #expect(connection.transactionStatus == .inFailedTransaction)
                return connection.backendProcessID
            }
            let next = try await pool.withConnection { connection in
                #expect(connection.transactionStatus == .idle)
                return (connection.backendProcessID, try await connection.query("SELECT \(Int32(7))").singleValue(Int32.self))
            }
            #expect(next.0 == firstBackend)
            #expect(next.1 == 7)
            #expect(pool.statistics.dirtyReturns == 1)
            #expect(metrics.counter("reservoir.postgres.dirty_returns", ["state": "in_failed_transaction"]) == 1)
        }
    }

    @Test(
        "a stream left part-way inside withConnection (break, or the task cancelled) drains before the release: the connection is reused, nothing is counted dirty"
    )
    func streamLeftPartWayIsNotDirty() async throws {
        let logs = LogCapture()
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }, logs: logs) { pool in
            // A set-returning function in the select list: rows flow while the server is still producing them, so the
            // statement is certainly running when the loop is left.
            let statement: PostgresQuery = "SELECT generate_series(1, \(5_000_000))::int4"
            let firstBackend = try await pool.withConnection { connection in
                var seen = 0
                for try await _ in connection.stream(statement, bufferSize: 16) {
                    seen += 1
                    if seen == 10 { break }
                }
                #expect(seen == 10)
                return connection.backendProcessID
            }
            // The consuming task cancelled part-way.
            let (started, startedContinuation) = AsyncStream<Void>.makeStream()
            let consumer = Task {
                try await pool.withConnection { connection in
                    for try await _ in connection.stream(statement, bufferSize: 16) { startedContinuation.yield() }
                }
            }
            var iterator = started.makeAsyncIterator()
            _ = await iterator.next()
            consumer.cancel()
            await #expect(throws: CancellationError.self) { try await consumer.value }
            let next = try await pool.withConnection { connection in
                #expect(connection.transactionStatus == .idle)
                return (connection.backendProcessID, try await connection.query("SELECT \(Int32(7))").singleValue(Int32.self))
            }
            #expect(next.0 == firstBackend)  // drained and kept, not closed and replaced
            #expect(next.1 == 7)
            #expect(pool.statistics.dirtyReturns == 0)
            #expect(pool.statistics.pool.totals.creations == 1)
            #expect(logs.records(atLeast: .warning).isEmpty)
        }
    }

    @Test("the pool's validation policy decides the round trips: .always validates every lease, a fresh connection under .ifIdle is not")
    func validationAfterIdleThreshold() async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.pool.validation = .always
        }) { pool in
            for _ in 0..<5 { try await pool.query("SELECT 1") }
            #expect(pool.statistics.validationRoundTrips >= 4)
        }
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.pool.validation = .ifIdle(atLeast: .seconds(3600))
        }) { pool in
            for _ in 0..<5 { try await pool.query("SELECT 1") }
            #expect(pool.statistics.validationRoundTrips == 0)
        }
    }

    @Test("DISCARD ALL and the clean reset reset session state between callers; prepared statements still work",
          arguments: [PostgresPool.SessionReset.discardAll, .clean])
    func sessionReset(reset: PostgresPool.SessionReset) async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.sessionReset = reset
        }) { pool in
            try await pool.withConnection { connection in
                try await connection.execute("SET search_path TO pg_catalog")
                _ = try await connection.query("SELECT \(Int32(1))")
            }
            try await pool.withConnection { connection in
                let path = try await connection.query("SHOW search_path").singleValue(String.self)
                #expect(path == "\"$user\", public")
                // Prepared again after DISCARD ALL deallocated it.
                let value1 = try await connection.query("SELECT \(Int32(2))").singleValue(Int32.self)
                #expect(value1 == 2)
            }
            #expect(pool.statistics.sessionResets >= 1)
        }
    }

    @Test("the pool's application_name is visible in pg_stat_activity")
    func applicationNameIsVisible() async throws {
        try await PoolTest.withPool { pool in
            let name = pool.configuration.applicationName
            let seen = try await pool.withConnection { connection in
                try await connection.query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
                    .singleValue(String.self)
            }
            #expect(seen == name)
            try await PoolTest.waitOnServer("SELECT count(*) >= 1 FROM pg_stat_activity WHERE application_name = \(name)")
        }
    }

    @Test("a lease dropped without release is reported with its acquire site, and its connection replaced")
    func leakDetection() async throws {
        let logs = LogCapture()
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }, logs: logs) { pool in
            _ = try await pool.lease()
            let leakLine = #line - 1
            try await pool.resourcePool.waitForStatistics { $0.totals.leaksDropped == 1 }
            let leaks = logs.records(atLeast: .warning).filter { $0.message.contains("leak") }
            #expect(leaks.count == 1)
            #expect(leaks.first?.metadata["lease.site"]?.hasPrefix("ReservoirIntegrationTests/PostgresPoolTests.swift:\(leakLine)") == true)
            // The pool still serves, on a new connection.
            let value2 = try await pool.query("SELECT \(Int32(5))").singleValue(Int32.self)
            #expect(value2 == 5)
        }
    }

    @Test("graceful shutdown lets statements in flight finish, refuses new ones, and closes every connection")
    func gracefulShutdownWithQueriesInFlight() async throws {
        let server = try await TestDatabase.server.value
        var configuration = PostgresPool.Configuration(
            connection: try .init(connectionString: server.connection.unixSocketConnectionString),
            name: TestDatabase.uniqueName("drain")
        )
        configuration.pool.maximumSize = 3
        let pool = try PostgresPool(configuration: configuration)
        let name = configuration.applicationName
        // The statements in flight wait on an advisory lock the test holds, so they are still running when the
        // shutdown starts, however slow the machine; releasing the lock lets them finish.
        let lockKey = Int64.random(in: 1...Int64.max)
        let admin = try await TestDatabase.connect()
        try await admin.execute("SELECT pg_advisory_lock(\(lockKey))")
        try await withThrowingTaskGroup(of: Int32.self) { group in
            group.addTask { try await pool.run(); return -1 }
            for index in 0..<3 {
                group.addTask {
                    try await pool.query(
                        "SELECT \(Int32(index)) FROM (SELECT pg_advisory_xact_lock_shared(\(lockKey))) AS waited"
                    ).singleValue(Int32.self) ?? -2
                }
            }
            try await pool.resourcePool.waitForStatistics { $0.leased == 3 }
            pool.triggerGracefulShutdown()
            // Every connection is busy: the request is either refused at once or queued and failed by the drain.
            await #expect(throws: ResourcePoolError.self) { try await pool.query("SELECT 1") }
            try await admin.execute("SELECT pg_advisory_unlock(\(lockKey))")
            var finished: [Int32] = []
            for try await value in group { finished.append(value) }
            #expect(finished.sorted() == [-1, 0, 1, 2])
        }
        await admin.close()
        try await pool.resourcePool.expectNoOutstandingLeases()
        try await PoolTest.waitOnServer("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = \(name)")
    }
}
