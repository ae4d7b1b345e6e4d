import Logging
@testable import ReservoirPostgres
import Testing

/// Cancellation at every point of a transaction's life: before and during each statement, between the decision to
/// commit and `COMMIT` going out, during `COMMIT`, after its answer. After `withTransaction` throws, the connection
/// is never inside a transaction; once `COMMIT` is on the wire, a cancel never hides whether it committed.
@Suite("Transactions under cancellation")
struct TransactionCancellationTests {
    struct Failure: Error {}

    private static func count(_ table: String, on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT count(*) FROM \(identifier: table)").singleValue(Int.self) ?? -1
    }

    /// A table whose inserts are checked at `COMMIT` by a deferred constraint trigger that takes advisory lock `key`:
    /// while another session holds that lock, `COMMIT` blocks on the server. That is how these tests hold a `COMMIT`
    /// in flight for exactly as long as they need, without timing.
    private static func makeTableWithBlockingCommit(_ connection: PostgresConnection, key: Int) async throws -> String {
        let table = TestDatabase.uniqueName("txc")
        try await connection.unsafeExecuteScript(
            """
            CREATE TABLE \(table) (value int);
            CREATE FUNCTION \(table)_wait() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock(\(key)); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER \(table)_at_commit AFTER INSERT ON \(table)
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \(table)_wait();
            """
        )
        return table
    }

    /// Waits until backend `pid` is blocked in `COMMIT` on an advisory lock, observed from `observer`.
    private static func waitUntilCommitBlocks(pid: Int32, observer: PostgresConnection) async throws {
        for _ in 0..<20_000 {
            let rows = try await observer.query(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE pid = \(pid) AND query = 'COMMIT' AND wait_event_type = 'Lock'
                """
            )
            if try rows.singleValue(Int.self) == 1 { return }
        }
        Issue.record("backend \(pid) never blocked in COMMIT")
    }

    @Test("a cancel between the decision to commit and COMMIT going out still commits, and says so")
    func cancelJustBeforeCommit() async throws {
        try await TestDatabase.withConnection { connection in
            let table = TestDatabase.uniqueName("txc")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
            // The hook runs after withTransaction's cancellation check: exactly the window where the old code
            // returned `.cancelled` without sending COMMIT and left the transaction open.
            let value = try await Task {
                try await TransactionTestHooks.$commitWillStart.withValue({ withUnsafeCurrentTask { $0?.cancel() } }) {
                    try await connection.withTransaction { transaction in
                        try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                        return 7
                    }
                }
            }.value
            #expect(value == 7)
            #expect(connection.transactionStatus == .idle)
            #expect(!connection.isClosed)
            // A later transaction on the same connection is its own, and the first one's row is committed.
            try await connection.withTransaction { transaction in
                try await transaction.execute("INSERT INTO \(identifier: table) VALUES (2)")
            }
            #expect(try await Self.count(table, on: connection) == 2)
        }
    }

    @Test("a cancel while COMMIT runs on the server waits for its answer and reports the commit")
    func cancelDuringCommitWaitsForTheAnswer() async throws {
        let key = Int.random(in: 1..<1_000_000)
        try await TestDatabase.withConnection { connection in
            try await TestDatabase.withConnection { blocker in
                let table = try await Self.makeTableWithBlockingCommit(connection, key: key)
                let pid = connection.backendProcessID
                try await blocker.unsafeExecuteScript("SELECT pg_advisory_lock(\(key))")
                let transaction = Task {
                    try await connection.withTransaction { transaction in
                        try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    }
                }
                try await TestDatabase.withConnection { observer in
                    try await Self.waitUntilCommitBlocks(pid: pid, observer: observer)
                }
                transaction.cancel()
                // The old driver cancelled COMMIT on the server here (ERROR 57014, a failed transaction left open)
                // and threw CancellationError. Now nothing is sent: the server still waits for the lock.
                try await blocker.unsafeExecuteScript("SELECT pg_advisory_unlock(\(key))")
                _ = try await transaction.value
                #expect(connection.transactionStatus == .idle)
                #expect(!connection.isClosed)
                #expect(try await Self.count(table, on: connection) == 1)
            }
        }
    }

    @Test("a COMMIT whose answer does not come within the grace period ends with commitOutcomeUnknown")
    func commitOutcomeUnknown() async throws {
        let key = Int.random(in: 1..<1_000_000)
        try await TestDatabase.withConnection { blocker in
            try await blocker.unsafeExecuteScript("SELECT pg_advisory_lock(\(key))")
            let connection = try await PostgresConnection.connect(
                configuration: {
                    var configuration = try await TestDatabase.configuration()
                    configuration.cancellationGracePeriod = .milliseconds(200)
                    return configuration
                }())
            let table = try await Self.makeTableWithBlockingCommit(connection, key: key)
            let pid = connection.backendProcessID
            let transaction = Task {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                }
            }
            try await TestDatabase.withConnection { observer in
                try await Self.waitUntilCommitBlocks(pid: pid, observer: observer)
            }
            transaction.cancel()
            let error = await #expect(throws: PostgresError.self) { try await transaction.value }
            #expect(error?.code == .commitOutcomeUnknown)
            #expect(connection.isClosed)
            #expect(connection.closeReason == .deadlineExpired)
            // Let the server finish: the outcome really was unknown to the client (here the server commits once the
            // lock is free, with no client left to tell).
            try await blocker.unsafeExecuteScript("SELECT pg_advisory_unlock(\(key))")
            await connection.close()
        }
    }

    @Test(
        "a cancel before, during or after a statement of the body rolls back and leaves the connection idle",
        arguments: [
            "before the first statement", "during the first statement (sent with BEGIN)", "during a statement",
            "after the last statement",
        ]
    )
    func cancelInTheBody(moment: String) async throws {
        try await TestDatabase.withConnection { connection in
            let table = TestDatabase.uniqueName("txc")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
            let (started, startedContinuation) = AsyncStream<Void>.makeStream()
            let (gate, gateContinuation) = AsyncStream<Void>.makeStream()
            let transaction = Task {
                try await connection.withTransaction { transaction in
                    if moment == "before the first statement" {
                        startedContinuation.yield()
                        for await _ in gate { break }
                    }
                    if moment == "during the first statement (sent with BEGIN)" {
                        startedContinuation.yield()
                        try await transaction.execute("SELECT pg_sleep(30)")
                    }
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    if moment == "during a statement" {
                        startedContinuation.yield()
                        try await transaction.execute("SELECT pg_sleep(30)")
                    }
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (2)")
                    if moment == "after the last statement" {
                        startedContinuation.yield()
                        for await _ in gate { break }
                    }
                }
            }
            for await _ in started { break }
            if moment.hasPrefix("during") {
                try await TestDatabase.withConnection { observer in
                    try await waitUntilRunning("pg_sleep", pid: connection.backendProcessID, observer: observer)
                }
            }
            transaction.cancel()
            gateContinuation.yield()
            await #expect(throws: CancellationError.self) { try await transaction.value }
            #expect(connection.transactionStatus == .idle)
            #expect(!connection.isClosed)
            #expect(try await Self.count(table, on: connection) == 0)
        }
    }

    @Test("a task cancelled before withTransaction starts never opens a transaction")
    func cancelledBeforeStart() async throws {
        try await TestDatabase.withConnection { connection in
            let transaction = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await connection.withTransaction { _ in 1 }
            }
            await #expect(throws: CancellationError.self) { try await transaction.value }
            #expect(connection.transactionStatus == .idle)
        }
    }

    @Test("through the pool, a cancel during COMMIT commits, returns the connection clean, and counts nothing")
    func poolCancelDuringCommit() async throws {
        let key = Int.random(in: 1..<1_000_000)
        let logs = LogCapture()
        try await PoolTest.withPool(logs: logs) { pool in
            try await TestDatabase.withConnection { blocker in
                let table = try await pool.withConnection { connection in
                    try await Self.makeTableWithBlockingCommit(connection, key: key)
                }
                try await blocker.unsafeExecuteScript("SELECT pg_advisory_lock(\(key))")
                let (pids, pidContinuation) = AsyncStream<Int32>.makeStream()
                let transaction = Task {
                    try await pool.withTransaction { transaction in
                        pidContinuation.yield(transaction.connection.backendProcessID)
                        try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    }
                }
                var iterator = pids.makeAsyncIterator()
                let pid = try #require(await iterator.next())
                try await TestDatabase.withConnection { observer in
                    try await Self.waitUntilCommitBlocks(pid: pid, observer: observer)
                }
                transaction.cancel()
                try await blocker.unsafeExecuteScript("SELECT pg_advisory_unlock(\(key))")
                try await transaction.value
                let rows = try await pool.query("SELECT count(*) FROM \(identifier: table)")
                #expect(try rows.singleValue(Int.self) == 1)
            }
            #expect(pool.statistics.dirtyReturns == 0)
            #expect(pool.statistics.cancellationsClosed == 0)
            #expect(logs.records(atLeast: .warning).isEmpty)
        }
    }

    @Test("through the pool, a statement cancelled in a transaction rolls back, and the connection is reused")
    func poolCancelDuringStatement() async throws {
        try await PoolTest.withPool { pool in
            let table = TestDatabase.uniqueName("txc")
            try await pool.withConnection { try await $0.unsafeExecuteScript("CREATE TABLE \(table) (value int)") }
            let (pids, pidContinuation) = AsyncStream<Int32>.makeStream()
            let transaction = Task {
                try await pool.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    pidContinuation.yield(transaction.connection.backendProcessID)
                    try await transaction.execute("SELECT pg_sleep(30)")
                }
            }
            var iterator = pids.makeAsyncIterator()
            let pid = try #require(await iterator.next())
            try await TestDatabase.withConnection { observer in
                try await waitUntilRunning("pg_sleep", pid: pid, observer: observer)
            }
            transaction.cancel()
            await #expect(throws: CancellationError.self) { try await transaction.value }
            let rows = try await pool.query("SELECT count(*) FROM \(identifier: table)")
            #expect(try rows.singleValue(Int.self) == 0)
            #expect(pool.statistics.dirtyReturns == 0)
            #expect(pool.statistics.cancellationsReused == 1)
            #expect(pool.statistics.cancellationsClosed == 0)
        }
    }
}
