import Foundation
import Glibc
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

/// Connection failures against the throwaway server and a listener that never answers: permanent failures carry their
/// SQLSTATE and open the pool's breaker at once; a hanging connect is reported as such; `connect_timeout` counts.
@Suite("Reliability: connection failures")
struct ConnectFailureTests {
    @Test("an unknown role and a missing database are rejected with their SQLSTATE", arguments: [
        ("reservoir_no_such_role", "postgres", SQLState.invalidAuthorizationSpecification),
        ("postgres", "reservoir_no_such_database", SQLState.invalidCatalogName),
    ])
    func permanentFailures(user: String, database: String, sqlState: SQLState) async throws {
        let server = try await TestDatabase.server.value
        // Over the Unix socket: TCP asks every role for its password first (28P01), the socket trusts and so reaches
        // the role and database checks.
        var configuration = try PostgresConnection.Configuration(
            connectionString: server.connection.unixSocketConnectionString)
        try configuration.set("user", to: user)
        try configuration.set("dbname", to: database)
        try configuration.set("password", to: "x-Secret-77")
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: configuration)
        }
        #expect(error.code == .connectionRejected)
        #expect(error.sqlState == sqlState)
        #expect(!error.description.contains("x-Secret-77"))
    }

    @Test("a pool whose password is wrong opens its breaker at the first failure and fails fast, with the SQLSTATE")
    func poolWrongPassword() async throws {
        let server = try await TestDatabase.server.value
        var configuration = PostgresPool.Configuration(
            connection: try .init(
                host: "127.0.0.1", port: server.connection.port, user: "app", password: "Wrong-7", database: "postgres"
            ),
            name: TestDatabase.uniqueName("wrongpw")
        )
        configuration.pool.circuitBreakerThreshold = 5
        let pool = try PostgresPool(configuration: configuration)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            let error = try await #require(throws: ResourcePoolError.self) {
                try await pool.query("SELECT 1", timeout: .seconds(20))
            }
            #expect(error.code == .circuitBreakerOpen)
            let underlying = try #require(error.underlying as? PostgresError)
            #expect(underlying.code == .connectionRejected)
            #expect(underlying.sqlState == .invalidPassword)
            #expect(pool.resourcePool.statistics.totals.creationFailures == 1)
            pool.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(start.duration(to: .now) < .seconds(10))
    }

    @Test("an acquire behind a connect that hangs says a connection attempt is in progress, and for how long")
    func hangingConnect() async throws {
        try await withSilentListener { port in
            var configuration = PostgresPool.Configuration(
                connection: try .init(connectionString: "host=127.0.0.1 port=\(port) user=x sslmode=disable"),
                name: TestDatabase.uniqueName("blackhole")
            )
            configuration.connection.connectTimeout = .seconds(30)
            let pool = try PostgresPool(configuration: configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await pool.run() }
                let start = ContinuousClock.now
                let error = try await #require(throws: ResourcePoolError.self) {
                    try await pool.query("SELECT 1", timeout: .seconds(1))
                }
                #expect(start.duration(to: .now) < .seconds(8))  // the default connect timeout is 10 s
                #expect(error.code == .timeout)
                #expect(error.message.contains("is being created and has not finished after"))
                #expect(!error.message.contains("undersized"))
                group.cancelAll()
            }
        }
    }

    @Test("connect_timeout in the connection string bounds a connect that hangs")
    func connectTimeoutFromString() async throws {
        try await withSilentListener { port in
            let configuration = try PostgresConnection.Configuration(
                connectionString: "postgresql://x@127.0.0.1:\(port)/db?sslmode=disable&connect_timeout=1"
            )
            #expect(configuration.connectTimeout == .seconds(1))
            let start = ContinuousClock.now
            let error = try await #require(throws: PostgresError.self) {
                try await PostgresConnection.connect(configuration: configuration)
            }
            #expect(error.code == .connectTimeout)
            #expect(error.message.contains("waiting for the server to answer the startup message"))
            #expect(start.duration(to: .now) < .seconds(8))  // the default connect timeout is 10 s
        }
    }
}

/// Runs `body` with the port of a loopback listener that completes TCP handshakes (the kernel does) and never says
/// a word: a black hole for the PostgreSQL protocol.
func withSilentListener<R>(_ body: (Int) async throws -> R) async throws -> R {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    listen(descriptor, 16)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return try await body(Int(UInt16(bigEndian: address.sin_port)))
}
