import Foundation
import Logging
@testable import ReservoirPostgres
import Testing

@Suite("Queries, parameters and rows")
struct QueryTests {
    @Test("interpolated values are bound as parameters, so hostile strings stay data")
    func hostileStrings() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("hostile")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (id serial PRIMARY KEY, value text)")
            let hostile = [
                "'; DROP TABLE \(table); --", "\\", "$1", "' OR '1'='1", "\"quoted\"", "E'\\x41'", "🌍'); --",
                "line\nbreak", "%s %d", "\u{FEFF}bom",
            ]
            for value in hostile {
                let query: PostgresQuery = "INSERT INTO \(identifier: table) (value) VALUES (\(value))"
                #expect(query.sql == "INSERT INTO \"\(table)\" (value) VALUES ($1)")
                try await connection.execute(query)
            }
            let rows = try await connection.query("SELECT value FROM \(identifier: table) ORDER BY id")
            #expect(try rows.map { try $0.decode(String.self, column: 0) } == hostile)
            let unmatched = try await connection.query("SELECT count(*) FROM \(identifier: table) WHERE value = \("' OR '1'='1")")
            #expect(try unmatched[0].decode(Int.self, column: 0) == 1)
        }
    }

    @Test("a NUL byte in a string parameter is a clear encoding error and nothing is sent")
    func nulByte() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let error = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT \("a\u{0}b")::text")
            }
            #expect(error.code == .encodingFailed)
            #expect(try await connection.query("SELECT 1::int4").singleValue(Int32.self) == 1)
        }
    }

    @Test("identifiers are quoted so they cannot break out")
    func identifiers() {
        #expect(PostgresQuery.quoteIdentifier("users") == "\"users\"")
        #expect(PostgresQuery.quoteIdentifier("a\"; DROP TABLE x; --") == "\"a\"\"; DROP TABLE x; --\"")
    }

    @Test("a type mismatch names the column, the Swift type and the PostgreSQL type")
    func typeMismatch() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let rows = try await connection.query("SELECT 42::int8 AS answer")
            let error = try #require(throws: PostgresError.self) { try rows[0].decode(String.self, column: "answer") }
            #expect(error.code == .decodingFailed)
            #expect(error.message.contains("\"answer\""))
            #expect(error.message.contains("int8"))
            #expect(error.message.contains("String"))
            let narrowing = try #require(throws: PostgresError.self) { try rows[0].decode(Int32.self, column: 0) }
            #expect(narrowing.message.contains("Int32"))
            let missing = try #require(throws: PostgresError.self) { try rows[0].decode(Int.self, column: "nope") }
            #expect(missing.message.contains("nope"))
            #expect(throws: PostgresError.self) { try rows[0].decode((Int, Int).self) }
        }
    }

    enum Status: String, Decodable { case active, disabled }
    struct Profile: Decodable, Equatable { var theme: String }
    struct User: Decodable {
        var id: Int
        var displayName: String
        var email: String?
        var status: Status
        var profile: Profile
        var createdAt: Date
        var tags: [String]
    }

    @Test("rows decode into Decodable types by column name")
    func decodable() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let rows = try await connection.query("""
                SELECT 7::int8 AS id, 'Ada' AS display_name, NULL::text AS email, 'active' AS status,
                       '{"theme": "dark"}'::jsonb AS profile, now() AS created_at, ARRAY['a', 'b'] AS tags
                """)
            let user = try rows[0].decode(as: User.self, keyStrategy: .convertToSnakeCase)
            #expect(user.id == 7)
            #expect(user.displayName == "Ada")
            #expect(user.email == nil)
            #expect(user.status == .active)
            #expect(user.profile == Profile(theme: "dark"))
            #expect(user.tags == ["a", "b"])
            let error = try #require(throws: PostgresError.self) { try rows[0].decode(as: User.self) }
            #expect(error.message.contains("displayName"))
        }
    }

    @Test("rows expose command tags, affected counts, column names and types")
    func metadata() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("meta")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (id int)")
            let inserted = try await connection.execute("INSERT INTO \(identifier: table) SELECT generate_series(1, 5)")
            #expect(inserted == 5)
            let insert = try await connection.query("INSERT INTO \(identifier: table) SELECT generate_series(6, 7)")
            #expect(insert.affectedRowCount == 2)
            #expect(insert.commandTag == "INSERT 0 2")
            #expect(try await connection.execute("DELETE FROM \(identifier: table) WHERE id > 5") == 2)
            #expect(try await connection.execute("CREATE INDEX ON \(identifier: table) (id)") == 0)
            let rows = try await connection.query("SELECT id, id::text AS label FROM \(identifier: table) ORDER BY id")
            #expect(rows.count == 5)
            #expect(rows.columnNames == ["id", "label"])
            #expect(rows.columnTypes == [.int4, .text])
            #expect(try rows.map { try $0.decode(Int32.self, column: "id") } == [1, 2, 3, 4, 5])
            let raw = try await connection.unsafeQuery(rawSQL: "SELECT count(*) FROM \(table)")
            #expect(try raw.singleValue(Int.self) == 5)
        }
    }

    @Test("prepared statements are cached up to the bound and evicted least recently used first")
    func statementCacheBound() async throws {
        try await TestDatabase.withConnection(configure: { $0.statementCacheCapacity = 2 }) { (connection: PostgresConnection) async throws in
            for value in 1...3 {
                try await connection.query("SELECT \(Int32(value))::int4 + 1")
                try await connection.query("SELECT \(Int32(value))::int4 + 2")
                try await connection.query("SELECT \(Int32(value))::int4 + 3")
            }
            #expect(connection.cachedStatementCount == 2)
            let count = try await connection.query("SELECT count(*) FROM pg_prepared_statements")
            #expect(try count.singleValue(Int.self) == 2)
        }
    }

    @Test("a new statement is prepared and run in one round trip; failures never leak prepared statements")
    func prepareAndExecute() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let table = TestDatabase.uniqueName("prep")
            try await connection.unsafeExecuteScript("CREATE TABLE \(table) (id int PRIMARY KEY)")
            try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(Int32(1)))")
            for _ in 0..<3 {
                // The statement is valid, its execution fails: it stays prepared, once.
                await #expect(throws: PostgresError.self) {
                    try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(Int32(1)))")
                }
            }
            // A statement the server cannot parse is not cached.
            await #expect(throws: PostgresError.self) { try await connection.query("SELEC \(Int32(1))") }
            let prepared = try await connection.query(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE \("INSERT INTO%")"
            )
            #expect(try prepared.singleValue(Int.self) == 1)
            #expect(connection.cachedStatementCount == 2)
            #expect(connection.transactionStatus == .idle)
        }
    }

    @Test("the statement cache can be turned off and recovers from DISCARD ALL")
    func statementCacheOff() async throws {
        try await TestDatabase.withConnection(configure: { $0.statementCacheCapacity = 0 }) { (connection: PostgresConnection) async throws in
            try await connection.query("SELECT \(Int32(1))::int4")
            #expect(connection.cachedStatementCount == 0)
            let count = try await connection.query("SELECT count(*) FROM pg_prepared_statements")
            #expect(try count.singleValue(Int.self) == 0)
        }
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            #expect(try await connection.query("SELECT \(Int32(5))::int4").singleValue(Int32.self) == 5)
            try await connection.unsafeQuery(rawSQL: "DEALLOCATE ALL")
            // The cache still names a statement the server forgot: the driver prepares it again, once.
            #expect(try await connection.query("SELECT \(Int32(6))::int4").singleValue(Int32.self) == 6)
        }
    }

    @Test("commands from concurrent tasks queue up and never interleave")
    func concurrentTasks() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await connection.query("SELECT \(index)::int8 * 2").singleValue(Int.self) ?? -1
                    }
                }
                var sum = 0
                for try await value in group { sum += value }
                #expect(sum == (0..<50).reduce(0) { $0 + $1 * 2 })
            }
        }
    }

    @Test("pinned execution runs queries on the connection's thread")
    func pinned() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let sum = try await connection.withPinnedExecution {
                var sum = 0
                for index in 0..<100 { sum += try await connection.query("SELECT \(index)").singleValue(Int.self) ?? 0 }
                return sum
            }
            #expect(sum == 4950)
        }
    }

    @Test("a task pinned to a connection keeps running after the connection closes")
    func pinnedAfterClose() async throws {
        let connection = try await TestDatabase.connect()
        let value = try await connection.withPinnedExecution {
            let before = try await connection.query("SELECT 1").singleValue(Int32.self)
            await connection.close()
            // The thread is gone; the task's next steps run on the global executor.
            let after = try? await connection.query("SELECT 2")  // fails: the connection is closed
            return (before ?? 0) + (after == nil ? 1 : 10)
        }
        #expect(value == 2)
        #expect(connection.isClosed)
    }

    @Test("server notices go to the logger")
    func notices() async throws {
        let recorder = LogRecorder()
        try await TestDatabase.withConnection(logger: recorder.logger) { (connection: PostgresConnection) async throws in
            try await connection.unsafeExecuteScript("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$")
        }
        let entries = recorder.entries
        #expect(entries.contains { $0.level == .notice && $0.message == "hello 42" })
        #expect(entries.contains { $0.level == .warning && $0.message == "careful" })
    }
}
