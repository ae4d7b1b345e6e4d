import ReservoirPostgres
import Testing

@Suite("Pipelined batches")
struct PipelineTests {
    @Test("a batch returns results in order, with an error in the middle affecting only its statement")
    func errorInTheMiddle() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("pipe")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
            let results = try await connection.pipeline([
                "INSERT INTO \(identifier: table) VALUES (\(Int32(1)))",
                "SELECT 1 / \(Int32(0))",
                "INSERT INTO \(identifier: table) VALUES (\(Int32(2)))",
                "SELECT count(*) FROM \(identifier: table)",
            ])
            #expect(results.count == 4)
            #expect(try results[0].get().affectedRowCount == 1)
            guard case .failure(let error) = results[1] else {
                Issue.record("the division by zero succeeded")
                return
            }
            #expect(error.sqlState == .divisionByZero)
            #expect(error.statement == "SELECT 1 / $1")
            #expect(try results[2].get().affectedRowCount == 1)
            #expect(try results[3].get().singleValue(Int.self) == 2)
            #expect(connection.transactionStatus == .idle)
            #expect(try await connection.query("SELECT 9").singleValue(Int32.self) == 9)
        }
    }

    @Test("a large batch of parameterised statements runs in one pipeline")
    func largeBatch() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let queries: [PostgresQuery] = (0..<2000).map { "SELECT \($0)::int8 * 3, \(String(repeating: "x", count: 100))" }
            let results = try await connection.pipeline(queries)
            #expect(try results.enumerated().allSatisfy { index, result in
                try result.get().singleValue(Int.self) == index * 3
            })
            #expect(try await connection.pipeline([]).isEmpty)
        }
    }

    @Test("a transaction pipeline returns every statement's rows in order, preparing new statements on the way")
    func transactionPipeline() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("pipe_tx")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
            // The INSERT is cached (prepared) by the first batch; the second batch runs it prepared.
            for round in 0..<2 {
                let results = try await connection.pipeline(
                    [
                        "INSERT INTO \(identifier: table) VALUES (\(Int32(round)))",
                        "SELECT \(Int32(7)) * 6",
                        "SELECT count(*) FROM \(identifier: table)",
                    ],
                    mode: .transaction
                )
                #expect(results.count == 3)
                #expect(try results[0].get().affectedRowCount == 1)
                #expect(try results[1].get().singleValue(Int32.self) == 42)
                #expect(try results[2].get().singleValue(Int.self) == round + 1)
            }
            #expect(connection.transactionStatus == .idle)
        }
    }

    @Test("a failure in a transaction pipeline rolls back the statements before it and skips the ones after it")
    func transactionPipelineFailure() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("pipe_tx")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (value int)")
            let results = try await connection.pipeline(
                [
                    "INSERT INTO \(identifier: table) VALUES (\(Int32(1)))",
                    "SELECT 1 / \(Int32(0))",
                    "INSERT INTO \(identifier: table) VALUES (\(Int32(2)))",
                    // Seen for the first time here: its Parse is skipped with the rest, so it must not stay cached.
                    "SELECT count(*) + \(Int32(100)) FROM \(identifier: table)",
                ],
                mode: .transaction
            )
            #expect(results.count == 4)
            let errors = results.map { result -> PostgresError? in
                if case .failure(let error) = result { return error }
                return nil
            }
            #expect(errors.allSatisfy { $0 != nil })
            #expect(errors[1]?.sqlState == .divisionByZero)
            #expect(errors[1]?.statement == "SELECT 1 / $1")
            #expect(errors[0]?.message.contains("rolled back: statement 2") == true)
            #expect((errors[0]?.underlying as? PostgresError)?.sqlState == .divisionByZero)
            #expect(errors[2]?.message.contains("skipped") == true)
            #expect(errors[3]?.message.contains("skipped") == true)
            // Nothing took effect, the connection is idle again, and the skipped statement runs when asked again.
            #expect(connection.transactionStatus == .idle)
            #expect(try await connection.query("SELECT count(*) FROM \(identifier: table)").singleValue(Int.self) == 0)
            let again = try await connection.pipeline(
                ["SELECT count(*) + \(Int32(100)) FROM \(identifier: table)"],
                mode: .transaction
            )
            #expect(try again[0].get().singleValue(Int.self) == 100)
            #expect(
                try await connection.query("SELECT count(*) + \(Int32(100)) FROM \(identifier: table)")
                    .singleValue(Int.self) == 100
            )
            // The INSERT's Parse ran before the failure: a prepared statement outlives the rollback, and the cached
            // one still works, in a pipeline (which cannot re-prepare) and alone.
            let insert = try await connection.pipeline(
                ["INSERT INTO \(identifier: table) VALUES (\(Int32(3)))"],
                mode: .transaction
            )
            #expect(try insert[0].get().affectedRowCount == 1)
            try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(Int32(4)))")
            #expect(try await connection.query("SELECT count(*) FROM \(identifier: table)").singleValue(Int.self) == 2)
        }
    }
}
