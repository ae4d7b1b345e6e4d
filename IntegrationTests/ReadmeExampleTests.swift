import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

/// The README's usage example, compiled and run against a throwaway server. Keep the two in step.
@Suite("README example")
struct ReadmeExampleTests {
    func readmeExample(connectionString: String) async throws -> [String] {
        var names: [String] = []
        // --- README begins ---
        var configuration = PostgresPool.Configuration(
            connection: try .init(connectionString: connectionString),
            name: "app"
        )
        configuration.pool.maximumSize = 8
        configuration.pool.acquireTimeout = .seconds(2)
        configuration.pool.leakThreshold = .seconds(30)
        let pool = try PostgresPool(configuration: configuration, logger: Logger(label: "app.db"))

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }  // or add the pool to a ServiceGroup

            let id: Int32 = 42
            try await pool.withTransaction { transaction in
                try await transaction.execute("UPDATE users SET visits = visits + 1 WHERE id = \(id)")
            }
            let rows = try await pool.query("SELECT name, visits FROM users WHERE id = \(id)")  // $1, never spliced
            for row in rows {
                let (name, visits) = try row.decode((String, Int32).self)
                print("\(name) visited \(visits) times")
                names.append(name)  // (not in the README)
            }

            pool.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        // --- README ends ---
        return names
    }

    @Test("runs as written")
    func runs() async throws {
        let server = try await TestDatabase.server.value
        try await TestDatabase.withConnection { connection in
            try await connection.unsafeExecuteScript(
                """
                CREATE TABLE IF NOT EXISTS users (id int4 PRIMARY KEY, name text NOT NULL, visits int4 NOT NULL);
                INSERT INTO users VALUES (42, 'Ada', 0) ON CONFLICT (id) DO NOTHING;
                """
            )
        }
        let names = try await readmeExample(connectionString: server.connection.unixSocketConnectionString)
        #expect(names == ["Ada"])
    }

    @Test("the README's example is compiled as top-level code, exactly as printed")
    func compiledAsPrinted() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let main = try String(
            contentsOf: root.appendingPathComponent("Examples/Sources/readme-example/main.swift"), encoding: .utf8)
        let start = try #require(readme.range(of: "## Using the pool\n\n```swift\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == main)
    }
}
