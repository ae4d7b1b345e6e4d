import ReservoirPostgres
import Testing

@Suite("Server errors")
struct ErrorTests {
    @Test("an error carries SQLSTATE, severity, message, position and the statement text")
    func undefinedTable() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let error = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT * FROM no_such_table WHERE id = \(12345)")
            }
            #expect(error.code == .server)
            #expect(error.sqlState == .undefinedTable)
            #expect(error.severity == "ERROR")
            #expect(error.message == "relation \"no_such_table\" does not exist")
            #expect(error.position == 15)
            #expect(error.statement == "SELECT * FROM no_such_table WHERE id = $1")
            #expect(!error.description.contains("12345"))
            // The connection is still usable.
            #expect(try await connection.query("SELECT 1").singleValue(Int32.self) == 1)
        }
    }

    @Test("constraint violations name the table, constraint and detail")
    func uniqueViolation() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("uniq")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (id int CONSTRAINT \(table)_pk PRIMARY KEY)")
            try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(Int32(1)))")
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(Int32(1)))")
            }
            #expect(error.sqlState == .uniqueViolation)
            #expect(error.sqlState?.errorClass == "23")
            #expect(error.tableName == table)
            #expect(error.constraintName == "\(table)_pk")
            #expect(error.detail == "Key (id)=(1) already exists.")
        }
    }

    @Test("hints, division by zero and syntax errors keep their codes")
    func hintsAndCodes() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let function = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT no_such_function(\(Int32(1)))")
            }
            #expect(function.sqlState == .undefinedFunction)
            #expect(function.hint?.contains("No function matches") == true)
            let division = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1/0") }
            #expect(division.sqlState == .divisionByZero)
            let syntax = try await #require(throws: PostgresError.self) { try await connection.query("SELEC 1") }
            #expect(syntax.sqlState == .syntaxError)
            #expect(syntax.position == 1)
            let script = try await #require(throws: PostgresError.self) {
                try await connection.unsafeExecuteScript("SELECT 1; SELECT 1/0; SELECT 3")
            }
            #expect(script.sqlState == .divisionByZero)
            #expect(connection.transactionStatus == .idle)
        }
    }
}
