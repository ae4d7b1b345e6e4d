import PostgresPool
import Testing

@Suite struct SmokeTests {
    @Test("a connection runs a parameterised query and decodes the row")
    func simpleQuery() async throws {
        try await TestDatabase.withConnection { connection in
            let rows = try await connection.query("SELECT \(Int32(41)) + 1 AS answer, \("hi") AS greeting")
            let (answer, greeting) = try #require(rows.first).decode((Int32, String).self)
            #expect(answer == 42)
            #expect(greeting == "hi")
            let again = try await connection.query("SELECT \(Int32(1)) + 1 AS answer, \("x") AS greeting")
            #expect(try again.first?.decode(Int32.self, column: "answer") == 2)
            #expect(connection.cachedStatementCount == 1)
        }
    }
}
