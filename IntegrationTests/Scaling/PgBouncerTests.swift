import Foundation
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Synchronization
import Testing

/// The pool behind Debian's PgBouncer (1.18: no protocol-level prepared statements), in transaction and session
/// pooling, against the shared throwaway server.
@Suite("PostgresPool behind PgBouncer", .serialized, .timeLimit(.minutes(2)))
struct PgBouncerTests {
    /// A pool connected to `bouncer` in `mode`.
    static func withPool<Result: Sendable>(
        through bouncer: PgBouncerProcess,
        mode: PostgresPool.PgBouncerMode?,
        configure: (inout PostgresPool.Configuration) throws -> Void = { _ in },
        _ body: (PostgresPool) async throws -> Result
    ) async throws -> Result {
        let server = try await TestDatabase.server.value
        return try await PoolTest.withPool(server: server, configure: { configuration in
            configuration.connection = try .init(connectionString: bouncer.connectionString)
            configuration.pgbouncer = mode
            try configure(&configuration)
        }, body)
    }

    /// Statements, a committed and a rolled-back transaction, and a pipeline, each run twice (a prepared statement
    /// would be reused the second time).
    static func exerciseQueryAPI(_ pool: PostgresPool) async throws {
        let table = TestDatabase.uniqueName("bounced")
        try await pool.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (id int4 PRIMARY KEY, note text)"))
        for round in 0..<2 {
            let id = Int32(round)
            try await pool.withTransaction { transaction in
                try await transaction.execute(
                    PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ($1, $2)", bindings: {
                        var bindings = PostgresBindings()
                        bindings.append(id)
                        bindings.append("kept")
                        return bindings
                    }()))
            }
            await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { transaction in
                    try await transaction.execute(
                        PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ($1 + 100, 'lost')", bindings: {
                            var bindings = PostgresBindings()
                            bindings.append(id)
                            return bindings
                        }()))
                    try await transaction.execute("SELECT 1 / 0")
                }
            }
            let count = try await pool.query(
                PostgresQuery(unsafeSQL: "SELECT count(*)::int4 FROM \(table)")
            ).singleValue(Int32.self)
            #expect(count == id + 1)
            let results = try await pool.pipeline(["SELECT \(Int32(1))", "SELECT 1 / 0", "SELECT \(Int32(3))"])
            #expect(try results[0].get().singleValue(Int32.self) == 1)
            #expect((try? results[1].get()) == nil)
            #expect(try results[2].get().singleValue(Int32.self) == 3)
        }
        try await pool.execute(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"))
    }

    /// Cancels a long statement through PgBouncer; the server must stop it and the client connection be reused.
    static func exerciseCancellation(_ pool: PostgresPool) async throws {
        let name = pool.configuration.applicationName
        let task = Task { try await pool.query("SELECT pg_sleep(60)") }
        try await PoolTest.waitOnServer(
            "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        try await PoolTest.waitOnServer(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(60)%'")
        #expect(pool.statistics.cancellationsReused == 1)
        #expect(try await pool.query("SELECT \(Int32(7))").singleValue(Int32.self) == 7)
    }

    @Test("transaction pooling: statements, transactions and pipelines work with the statement cache off")
    func transactionPoolingQueryAPI() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 2)) {
            bouncer in
            try await Self.withPool(through: bouncer, mode: .transactionPooling, configure: { $0.pool.maximumSize = 4 }) {
                pool in
                #expect(pool.configuration.pgbouncer == .transactionPooling)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<4 { group.addTask { try await Self.exerciseQueryAPI(pool) } }
                    try await group.waitForAll()
                }
                let cached = try await pool.withConnection { $0.cachedStatementCount }
                #expect(cached == 0)
            }
        }
    }

    @Test("transaction pooling without the mode breaks: two clients prepare the same statement name on one server connection")
    func transactionPoolingWithoutTheModeFails() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 1)) {
            bouncer in
            let failures = try await Self.withPool(through: bouncer, mode: nil, configure: { $0.pool.maximumSize = 2 }) {
                pool in
                // Two client connections, one server connection: both name their first statement rsv_s1.
                try await pool.withConnection { first in
                    try await pool.withConnection { second in
                        var failures = 0
                        for connection in [first, second] {
                            do { _ = try await connection.query("SELECT \(Int32(1))") } catch { failures += 1 }
                        }
                        return failures
                    }
                }
            }
            #expect(failures == 1)
        }
    }

    @Test("transaction pooling: a cancelled statement stops on the server and the connection is reused")
    func transactionPoolingCancellation() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 4)) {
            bouncer in
            try await Self.withPool(through: bouncer, mode: .transactionPooling, configure: { $0.pool.maximumSize = 1 }) {
                pool in try await Self.exerciseCancellation(pool)
            }
        }
    }

    @Test("transaction pooling: server connections terminated, then PgBouncer restarted; the pool recovers each time")
    func transactionPoolingFaults() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 2)) {
            bouncer in
            try await Self.withPool(through: bouncer, mode: .transactionPooling, configure: {
                $0.pool.minimumSize = 2
                $0.pool.maximumSize = 2
            }) { pool in
                #expect(try await pool.query("SELECT \(Int32(1))").singleValue(Int32.self) == 1)
                // 1. The server ends every backend PgBouncer holds; PgBouncer opens new ones, the pool sees nothing.
                // PgBouncer sets each client's application_name on the server connection it lends it.
                let name = pool.configuration.applicationName
                try await PoolTest.waitOnServer("SELECT count(*) >= 1 FROM pg_stat_activity WHERE application_name = \(name)")
                _ = try await TestDatabase.withConnection { admin in
                    try await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \(name)")
                }
                try await PoolTest.waitOnServer("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = \(name)")
                for _ in 0..<4 {
                    #expect(try await pool.query("SELECT \(Int32(2))").singleValue(Int32.self) == 2)
                }
                // 2. PgBouncer itself goes away and comes back on the same port: every pooled connection broke.
                await bouncer.stop()
                try await bouncer.start()
                for _ in 0..<4 {
                    #expect(try await pool.query("SELECT \(Int32(3))").singleValue(Int32.self) == 3)
                }
                #expect(pool.statistics.validationFailures >= 1)
            }
        }
    }

    @Test("session pooling: statements, transactions, pipelines and cancellation work, with the statement cache on")
    func sessionPooling() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "session", defaultPoolSize: 4)) {
            bouncer in
            try await Self.withPool(through: bouncer, mode: .sessionPooling, configure: { $0.pool.maximumSize = 2 }) {
                pool in
                try await Self.exerciseQueryAPI(pool)
                let cached = try await pool.withConnection { $0.cachedStatementCount }
                #expect(cached > 0)
                try await Self.exerciseCancellation(pool)
            }
        }
    }

    @Test("transaction pooling: a per-statement statement_timeout applies to its statement and to no other client's")
    func transactionPoolingStatementTimeout() async throws {
        let server = try await TestDatabase.server.value
        try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 2)) {
            bouncer in
            try await Self.withPool(through: bouncer, mode: .transactionPooling, configure: { $0.pool.maximumSize = 4 }) {
                pool in
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.query("SELECT pg_sleep(2)", statementTimeout: .milliseconds(100))
                }
                #expect(error?.code == .statementTimeout)
                // Many short statements with their own timeout, and plain ones beside them, from four clients over two
                // server connections: a plain statement must always see the server's default.
                let defaults = try await withThrowingTaskGroup(of: [String].self) { group in
                    for client in 0..<4 {
                        group.addTask {
                            var seen: [String] = []
                            for _ in 0..<25 {
                                if client.isMultiple(of: 2) {
                                    _ = try await pool.query("SELECT 1", statementTimeout: .milliseconds(1500))
                                } else {
                                    let value = try await pool.query("SHOW statement_timeout").singleValue(String.self)
                                    seen.append(value ?? "")
                                }
                            }
                            return seen
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(defaults.count == 50)
                #expect(Set(defaults) == ["0"], "a plain statement saw \(Set(defaults))")
            }
        }
    }

    @Test("PgBouncer and its guard hold none of this process's descriptors: a pipe opened without close-on-exec still ends while they run")
    func pgbouncerInheritsNoDescriptor() async throws {
        // A Foundation `Pipe` is such a pipe: before the guard was spawned with "close from 3", a long-lived guard
        // kept the write end of another test's `pg_config` pipe, and that read never ended (the CI run that hung).
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let server = try await TestDatabase.server.value
        let readResult: Int = try await PgBouncerProcess.with(server: server, settings: .init(poolMode: "session")) {
            bouncer in
            close(ends[1])
            _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
            var byte: UInt8 = 0
            let count = read(ends[0], &byte, 1)
            // 0: end of file, no writer left. -1 with EAGAIN: a child (the guard or PgBouncer) holds the write end.
            return count < 0 ? -Int(errno) : count
        }
        #expect(readResult == 0, "read gave \(readResult) (-EAGAIN = \(-Int(EAGAIN))): a spawned child holds the pipe")
    }
}
