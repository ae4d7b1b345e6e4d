// The code shown in docs/testing.md, kept here so that it compiles and runs. Change both together.

import ReservoirPostgresTestKit
import Testing

// docs/testing.md: "One server per test"
@Suite("Orders against a real PostgreSQL")
struct OrderStoreIntegrationTests {
    @Test("an order survives a server restart")
    func orderSurvivesRestart() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.settings = ["max_connections": "20", "statement_timeout": "5s"]

        try await PostgresTestServer.withServer(configuration) { server in
            // What the client under test needs: a libpq connection string (or the fields one by one).
            let connectionString = server.connection.tcpConnectionString
            #expect(connectionString.hasPrefix("host=127.0.0.1 port=\(server.connection.port) "))

            try await server.psql("CREATE TABLE orders (id int PRIMARY KEY, total numeric)")
            try await server.psql("INSERT INTO orders VALUES (1, 9.99)")

            try await server.restart()  // same data folder, same port

            #expect(try await server.psql("SELECT total FROM orders WHERE id = 1") == "9.99")
        }
        // Here the server is stopped and its folder deleted, also if the body had thrown.
    }
}

// docs/testing.md: "One server for many tests"
enum SharedTestDatabase {
    /// Started once, on first use, by whichever test gets here first. Never stopped explicitly: when the test
    /// process exits, the server's watchdog stops it and deletes its folder.
    static let server = Task { try await PostgresTestServer.start() }
}

@Suite("Queries sharing one server")
struct SharedServerTests {
    @Test("each test works in its own database")
    func ownDatabase() async throws {
        let server = try await SharedTestDatabase.server.value
        try await server.psql("CREATE DATABASE shared_example_one")
        try await server.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", database: "shared_example_one")
        #expect(try await server.psql("SELECT sum(x) FROM t", database: "shared_example_one") == "1")
    }

    @Test("the same server answers the next test")
    func sameServer() async throws {
        let server = try await SharedTestDatabase.server.value
        #expect(try await server.psql("SELECT 40 + 2") == "42")
    }
}

// docs/testing.md: "Passwords and failed connections"
@Suite("Connect failures")
struct ConnectFailureExampleTests {
    @Test("a wrong password is refused")
    func wrongPassword() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.roles = [.init(name: "app", password: "correct horse")]

        try await PostgresTestServer.withServer(configuration) { server in
            let wrong = server.connection.connectionString(transport: .tcp, user: "app", password: "wrong")
            let result = try await server.runTool("psql", arguments: ["-X", "-c", "SELECT 1", "-d", wrong])
            #expect(!result.succeeded)
            #expect(result.standardError.contains("password authentication failed for user \"app\""))
        }
    }
}

// docs/testing.md: "pgbench's tables"
@Suite("pgbench example")
struct PgbenchExampleTests {
    @Test("pgbench's tables for a benchmark")
    func pgbenchTables() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.sharedBuffers = "128MB"  // room for the data of larger scales

        try await PostgresTestServer.withServer(configuration) { server in
            try await server.pgbench(arguments: ["-i", "-s", "1", "-q"])
            let run = try await server.pgbench(arguments: ["-S", "-c", "2", "-t", "50", "-n"])
            #expect(run.standardOutput.contains("number of transactions actually processed: 100/100"))
        }
    }
}
