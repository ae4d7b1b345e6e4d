import Foundation
import Testing

@testable import ReservoirPostgres

@Suite("Connection failures: SQLSTATE and permanence from libpq's verbose message")
struct PostgresConnectErrorTests {
    @Test(
        "wrong password, unknown role and missing database are rejected permanently, with their SQLSTATE",
        arguments: [
            (
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password authentication "
                    + "failed for user \"app\"\nLOCATION:  auth_failed, auth.c:323\n",
                "28P01"
            ),
            (
                "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  28000: role \"nobody\" does "
                    + "not exist\nLOCATION:  InitializeSessionUserId, miscinit.c:750\n",
                "28000"
            ),
            (
                "connection to server at \"::1\", port 5432 failed: FATAL:  3D000: database \"nope\" does not exist\n",
                "3D000"
            ),
        ]
    )
    func permanent(message: String, sqlState: String) {
        let error = PostgresError.connectFailure(libpqMessage: message)
        #expect(error.code == .connectionRejected)
        #expect(error.sqlState == SQLState(rawValue: sqlState))
        #expect(error.severity == "FATAL")
        #expect(error.isPermanent)
        #expect(!error.message.contains("LOCATION"))
        #expect(!error.message.contains(sqlState + ":"))
        #expect(error.message.contains("FATAL:  "))
    }

    @Test("a transient server failure keeps connectionFailed and its SQLSTATE")
    func transient() {
        let error = PostgresError.connectFailure(
            libpqMessage: "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  53300: sorry, too many "
                + "clients already\n"
        )
        #expect(error.code == .connectionFailed)
        #expect(error.sqlState == SQLState(rawValue: "53300"))
        #expect(!error.isPermanent)
    }

    @Test("a failure libpq detected itself has no SQLSTATE and is not permanent")
    func local() {
        let error = PostgresError.connectFailure(
            libpqMessage: "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server "
                + "running on that host and accepting TCP/IP connections?\n"
        )
        #expect(error.code == .connectionFailed)
        #expect(error.sqlState == nil)
        #expect(!error.isPermanent)
        #expect(error.message.contains("Connection refused"))
    }

    @Test("a role named like a SQLSTATE does not fool the parser")
    func lookalike() {
        let error = PostgresError.connectFailure(
            libpqMessage: "connection to server failed: FATAL:  28000: role \"FATAL:  3D000: x\" does not exist\n"
        )
        #expect(error.sqlState == SQLState(rawValue: "28000"))
    }
}

@Suite("Connection configuration: connect_timeout, ports and values checked before connecting")
struct PostgresConnectionConfigurationValidationTests {
    @Test("connect_timeout in a connection string sets the connect timeout", arguments: [
        ("host=db connect_timeout=3", Duration.seconds(3)),
        ("postgresql://db/app?connect_timeout=7", .seconds(7)),
        ("host=db connect_timeout=0", .seconds(10)),
        ("host=db", .seconds(10)),
    ])
    func connectTimeoutFromString(string: String, expected: Duration) throws {
        let configuration = try PostgresConnection.Configuration(connectionString: string)
        #expect(configuration.connectTimeout == expected)
    }

    @Test("connect_timeout set as a keyword sets the connect timeout; a non-number is rejected naming it")
    func connectTimeoutKeyword() throws {
        var configuration = try PostgresConnection.Configuration(host: "db")
        try configuration.set("connect_timeout", to: "4")
        #expect(configuration.connectTimeout == .seconds(4))
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: "host=db connect_timeout=soon")
        }
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.hasPrefix("connect_timeout"))
        #expect(error.field == "connect_timeout")
    }

    @Test("a URI whose port is not a number or is out of range is rejected naming the port", arguments: [
        "postgresql://db:http/app", "postgresql://db:0/app", "postgresql://db:65536/app", "host=db port=-1",
        "postgresql://db:99999999999999999999/app", "host=a,b port=5432,x", "host=a,b port=5432,5433,5434",
        "host=a port=5432,5433", "hostaddr=127.0.0.1,127.0.0.2,127.0.0.3 port=1,2",
        "postgresql://a:5432,b:5433,c/app?port=1,2",
    ])
    func badPort(string: String) throws {
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: string)
        }
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.hasPrefix("port"))
        #expect(error.field == "port")
    }

    @Test("good ports and host lists pass", arguments: [
        "postgresql://db:5432/app", "host=a,b port=5432,5433", "host=a,b port=,5433", "host=a,b,c port=5432",
        "postgresql://a:5432,b:5433/app?target_session_attrs=read-write",
        "host=a,b port=1,2 target_session_attrs=prefer-standby", "hostaddr=127.0.0.1,127.0.0.2 port=1,2",
    ])
    func goodPort(string: String) throws {
        let configuration = try PostgresConnection.Configuration(connectionString: string)
        try configuration.validate()
    }

    @Test("an unknown target_session_attrs is rejected before connecting, naming the field", arguments: [
        "host=a,b target_session_attrs=readwrite", "postgresql://a,b/app?target_session_attrs=master",
    ])
    func badTargetSessionAttributes(string: String) throws {
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: string)
        }
        #expect(error.code == .invalidConfiguration)
        #expect(error.field == "target_session_attrs")
        #expect(error.message.contains("read-write"))
    }

    @Test("ports that do not match the hosts set one by one fail validation, naming the port")
    func mismatchedPortsBySetting() throws {
        var configuration = try PostgresConnection.Configuration(host: "a,b,c")
        try configuration.set("port", to: "5432,5433")
        let error = try #require(throws: PostgresError.self) { try configuration.validate() }
        #expect(error.field == "port")
        try configuration.set("port", to: "5432,5433,5434")
        try configuration.validate()
    }

    @Test("a connect timeout of zero or less and a negative statement cache capacity fail validation, named")
    func validation() throws {
        var configuration = try PostgresConnection.Configuration(host: "db")
        try configuration.validate()
        configuration.connectTimeout = .zero
        #expect(throws: PostgresError.self) { try configuration.validate() }
        configuration.connectTimeout = .seconds(-1)
        let timeout = try #require(throws: PostgresError.self) { try configuration.validate() }
        #expect(timeout.message.hasPrefix("connectTimeout"))
        #expect(timeout.field == "connectTimeout")
        configuration.connectTimeout = .seconds(1)
        configuration.statementCacheCapacity = -1
        let capacity = try #require(throws: PostgresError.self) { try configuration.validate() }
        #expect(capacity.message.hasPrefix("statementCacheCapacity"))
        #expect(capacity.field == "statementCacheCapacity")
    }

    @Test("a pool with an invalid connection configuration is rejected at creation, naming the field")
    func poolValidation() throws {
        var connection = try PostgresConnection.Configuration(host: "db")
        connection.connectTimeout = .zero
        let error = try #require(throws: PostgresError.self) {
            try PostgresPool(configuration: PostgresPool.Configuration(connection: connection))
        }
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.contains("connection.connectTimeout"))
    }

    @Test("a connection with an invalid configuration fails before connecting, naming the field")
    func connectionValidation() async throws {
        var configuration = try PostgresConnection.Configuration(host: "/nonexistent-socket-directory")
        configuration.statementCacheCapacity = -5
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: configuration)
        }
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.hasPrefix("statementCacheCapacity"))
    }
}

@Suite("PostgreSQL errors describe themselves")
struct PostgresErrorLocalizedTests {
    @Test("localizedDescription says what went wrong")
    func localizedDescriptions() {
        let error: any Error = PostgresError(.connectionRejected, message: "password authentication failed")
        #expect(error.localizedDescription.contains("password authentication failed"))
        let decoding: any Error = PostgresDecodingFailure.unexpectedNull
        #expect(decoding.localizedDescription.contains("NULL"))
    }
}
