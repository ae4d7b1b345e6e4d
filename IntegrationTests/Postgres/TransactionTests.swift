@testable import ReservoirPostgres
import Testing

@Suite("Transactions")
struct TransactionTests {
    struct Failure: Error {}

    private func count(_ table: String, on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT count(*) FROM \(identifier: table)").singleValue(Int.self) ?? -1
    }

    private func makeTable(_ connection: PostgresConnection) async throws -> String {
        let table = TestDatabase.uniqueName("tx")
        try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
        return table
    }

    @Test("a transaction commits when its body returns")
    func commit() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let (status, busy) = try await connection.withTransaction { transaction in
                try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1), (2)")
                return (connection.transactionStatus, connection.isBusy)
            }
            #expect(status == .inTransaction)
            #expect(busy)
            #expect(!connection.isBusy)
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 2)
        }
    }

    @Test("a transaction rolls back when its body throws, and the error comes through")
    func rollbackOnThrow() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            await #expect(throws: Failure.self) {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    throw Failure()
                }
            }
            #expect(try await count(table, on: connection) == 0)
            // A server error inside the body rolls back too and leaves the connection idle.
            await #expect(throws: PostgresError.self) {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    try await transaction.execute("SELECT 1/0")
                }
            }
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 0)
        }
    }

    @Test("cancelling the task rolls the transaction back and leaves the connection usable")
    func rollbackOnCancellation() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let observer = try await TestDatabase.connect()
            let task = Task {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    try await transaction.execute("SELECT pg_sleep(10)")
                }
            }
            try await waitUntilRunning("pg_sleep(10)", pid: connection.backendProcessID, observer: observer)
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 0)
            await observer.close()
        }
    }

    @Test("nested transactions are savepoints: an inner failure keeps the outer work")
    func savepoints() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            try await connection.withTransaction(isolationLevel: .serializable) { transaction in
                try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                await #expect(throws: Failure.self) {
                    try await transaction.withSavepoint { inner in
                        try await inner.execute("INSERT INTO \(identifier: table) VALUES (2)")
                        throw Failure()
                    }
                }
                try await connection.withTransaction { inner in
                    try await inner.execute("INSERT INTO \(identifier: table) VALUES (3)")
                }
                // A savepoint whose body swallowed an error is rolled back and reported; the outer work survives.
                await #expect(throws: PostgresError.self) {
                    try await transaction.withSavepoint { inner in
                        try await inner.execute("INSERT INTO \(identifier: table) VALUES (4)")
                        _ = try? await inner.execute("SELECT 1/0")
                    }
                }
                let isolation = try await transaction.query("SHOW transaction_isolation").singleValue(String.self)
                #expect(isolation == "serializable")
            }
            let values = try await connection.query("SELECT value FROM \(identifier: table) ORDER BY value")
            #expect(try values.map { try $0.decode(Int32.self, column: 0) } == [1, 3])
        }
    }

    @Test("a body that swallows a statement's error does not silently lose its transaction")
    func swallowedError() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let error = try await #require(throws: PostgresError.self) {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    _ = try? await transaction.execute("SELECT 1/0")  // swallowed: the transaction is now aborted
                }
            }
            #expect(error.sqlState == .inFailedSQLTransaction)
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 0)
        }
    }

    @Test("BEGIN travels with the first statement: two statements cost three round trips, an empty body none")
    func beginTravelsWithTheFirstStatement() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            func steps() -> Int { connection.core.lock.withLock { connection.core.stepsWritten } }
            func transaction(_ value: Int32) async throws -> PostgresTransactionStatus {
                try await connection.withTransaction(isolationLevel: .repeatableRead) { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (\(value))")
                    let status = connection.transactionStatus
                    let isolation = try await transaction.query("SHOW transaction_isolation").singleValue(String.self)
                    #expect(isolation == "repeatable read")
                    return status
                }
            }
            #expect(try await transaction(1) == .inTransaction)  // prepares both statements
            let before = steps()
            #expect(try await transaction(2) == .inTransaction)
            #expect(steps() - before == 3)  // BEGIN + INSERT, SHOW, COMMIT

            let beforeEmpty = steps()
            let value = try await connection.withTransaction { _ in
                // Nothing has run on the server yet: the transaction opens with its first statement.
                connection.transactionStatus
            }
            #expect(value == .idle)
            #expect(steps() == beforeEmpty)
            await #expect(throws: Failure.self) { try await connection.withTransaction { _ in throw Failure() } }
            #expect(steps() == beforeEmpty)  // nothing to roll back either
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 2)
        }
    }

    @Test(
        "whatever the body's first command is, it runs inside the transaction",
        arguments: ["new statement", "cached statement", "unnamed", "script", "stream", "pipeline", "savepoint"]
    )
    func everyFirstCommandOpensTheTransaction(first: String) async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let insert: PostgresQuery = "INSERT INTO \(identifier: table) VALUES (1) RETURNING value"
            if first == "cached statement" { _ = try await connection.query(insert) }  // prepared and cached now
            func runFirstCommand(_ transaction: PostgresTransaction) async throws {
                switch first {
                case "new statement", "cached statement": _ = try await transaction.query(insert)
                case "unnamed": _ = try await connection.unsafeQuery(rawSQL: "INSERT INTO \(table) VALUES (1)")
                case "script": try await connection.unsafeExecuteScript("INSERT INTO \(table) VALUES (1)")
                case "stream": for try await _ in transaction.stream(insert) {}
                case "pipeline": _ = try await connection.pipeline([insert], mode: .independent)
                default: try await transaction.withSavepoint { try await $0.execute(insert) }
                }
            }
            let before = try await count(table, on: connection)
            await #expect(throws: Failure.self) {
                try await connection.withTransaction(isolationLevel: .serializable) { transaction in
                    try await runFirstCommand(transaction)
                    #expect(connection.transactionStatus == .inTransaction)
                    let isolation = try await transaction.query("SHOW transaction_isolation").singleValue(String.self)
                    #expect(isolation == "serializable")
                    throw Failure()
                }
            }
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == before)  // rolled back with the transaction
            try await connection.withTransaction { try await runFirstCommand($0) }
            #expect(try await count(table, on: connection) == before + 1)
        }
    }

    @Test(
        "a BEGIN that fails fails every statement of the body unsent, and the transaction, even when the body catches it",
        arguments: [true, false]
    )
    func failedBegin(firstStatementCached: Bool) async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let insert: PostgresQuery = "INSERT INTO \(identifier: table) VALUES (1)"
            if firstStatementCached { _ = try await connection.execute("DELETE FROM \(identifier: table)") }
            // Not a level PostgreSQL knows: BEGIN fails to parse, before any transaction block opens.
            let bogus = PostgresConnection.IsolationLevel(sql: "NONSENSE")
            var errors: [PostgresError] = []
            let thrown = try await #require(throws: PostgresError.self) {
                try await connection.withTransaction(isolationLevel: bogus) { transaction in
                    for statement in [
                        firstStatementCached ? "DELETE FROM \(identifier: table)" : insert, insert, insert,
                    ] as [PostgresQuery] {
                        do { _ = try await transaction.execute(statement) } catch let error as PostgresError {
                            errors.append(error)
                        }
                    }
                }
            }
            #expect(thrown.sqlState == .syntaxError)
            #expect(errors.count == 3)
            #expect(errors.allSatisfy { $0.sqlState == .syntaxError })
            #expect(connection.transactionStatus == .idle)
            #expect(try await count(table, on: connection) == 0)  // no insert ran outside the transaction
            // The connection is fine for the next transaction.
            try await connection.withTransaction { try await $0.execute(insert) }
            #expect(try await count(table, on: connection) == 1)
        }
    }

    @Test("a read-only transaction rejects writes")
    func readOnly() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let error = try await #require(throws: PostgresError.self) {
                try await connection.withTransaction(readOnly: true) { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                }
            }
            #expect(error.sqlState == .readOnlySQLTransaction)
        }
    }

    @Test("statements from other tasks wait until the transaction ends")
    func exclusivity() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = try await makeTable(connection)
            let (inserted, insertedContinuation) = AsyncStream<Void>.makeStream()
            let (gate, gateContinuation) = AsyncStream<Void>.makeStream()
            let transaction = Task {
                try await connection.withTransaction { transaction in
                    try await transaction.execute("INSERT INTO \(identifier: table) VALUES (1)")
                    insertedContinuation.yield()
                    for await _ in gate { break }
                    throw Failure()
                }
            }
            for await _ in inserted { break }
            // This statement must not run inside the other task's transaction (it would see the row).
            let outsider = Task { try await count(table, on: connection) }
            while connection.core.lock.withLock({ connection.core.machine.waiting.count }) == 0 { await Task.yield() }
            gateContinuation.yield()
            await #expect(throws: Failure.self) { try await transaction.value }
            #expect(try await outsider.value == 0)
        }
    }
}

/// Waits until the backend `pid` runs a statement containing `text`, observed from another connection.
func waitUntilRunning(_ text: String, pid: Int32, observer: PostgresConnection) async throws {
    for _ in 0..<10_000 {
        let rows = try await observer.query(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid) AND state = 'active' AND query LIKE \("%" + text + "%")"
        )
        if try rows.singleValue(Int.self) == 1 { return }
    }
    Issue.record("backend \(pid) never ran \(text)")
}
