import PostgresPool
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
}
