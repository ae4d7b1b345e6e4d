import Foundation
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import Testing

/// The pool behind a misbehaving network (`FaultProxy`): each fault ends with the pool consistent (no lease lost, the
/// next request served once the network is back) and no wait longer than its bound.
@Suite("Reliability: network faults through a proxy", .timeLimit(.minutes(2)))
struct FaultProxyTests {
    /// Runs `body` with a pool whose connections go through a fresh proxy to the shared test server over TCP.
    static func withProxiedPool<R: Sendable>(
        configure: @escaping (inout PostgresPool.Configuration) -> Void = { _ in },
        _ body: (PostgresPool, FaultProxy) async throws -> R
    ) async throws -> R {
        let server = try await TestDatabase.server.value
        let proxy = try FaultProxy(targetPort: server.connection.port)
        defer { proxy.stop() }
        return try await PoolTest.withPool(configure: { configuration in
            configuration.connection = try .init(
                host: "127.0.0.1", port: proxy.port, user: "app", password: TestDatabase.appPassword,
                database: "postgres"
            )
            try configuration.connection.set("sslmode", to: "disable")
            configuration.connection.connectTimeout = .seconds(2)
            configuration.pool.maximumSize = 2
            configure(&configuration)
        }) { pool in
            try await body(pool, proxy)
        }
    }

    static func waitUntilRunning(_ pool: PostgresPool, _ statement: String) async throws {
        let name = pool.configuration.applicationName
        try await PoolTest.waitOnServer(
            "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query = \(statement)"
        )
    }

    @Test("a connection cut mid-query fails that query at once with connectionClosed; the next one is served")
    func cutMidQuery() async throws {
        try await Self.withProxiedPool { pool, proxy in
            let statement = "SELECT pg_sleep(30)"
            let task = Task { try await pool.query(PostgresQuery(unsafeSQL: statement)) }
            try await Self.waitUntilRunning(pool, statement)
            let start = ContinuousClock.now
            proxy.cutAll()
            let error = await #expect(throws: PostgresError.self) { try await task.value }
            #expect(error?.code == .connectionClosed)
            #expect(start.duration(to: .now) < .seconds(5))
            #expect(try await pool.query("SELECT \(Int32(7))").singleValue(Int32.self) == 7)
            #expect(await pool.resourcePool.outstandingLeaseSites().isEmpty)
        }
    }

    // The cancel request opens a connection of its own through the same proxy, so into the black hole too, and
    // `PQcancel` blocks there; it runs on a short-lived thread of its own, and the connection's wait keeps its
    // deadline: past the grace period the connection breaks and the caller returns.
    @Test("a black hole mid-query: the cancelled caller returns within its grace period and the pool recovers")
    func blackHoleMidQuery() async throws {
        try await Self.withProxiedPool(configure: { $0.cancellationGracePeriod = .milliseconds(500) }) { pool, proxy in
            let statement = "SELECT pg_sleep(30)"
            let task = Task { try await pool.query(PostgresQuery(unsafeSQL: statement)) }
            try await Self.waitUntilRunning(pool, statement)
            proxy.mode = .blackHole
            let start = ContinuousClock.now
            task.cancel()
            await #expect(throws: (any Error).self) { try await task.value }
            let waited = start.duration(to: .now)
            #expect(waited < .seconds(5), "the cancelled caller waited \(waited)")
            proxy.mode = .forward
            #expect(try await pool.query("SELECT \(Int32(8))", timeout: .seconds(10)).singleValue(Int32.self) == 8)
        }
    }

    @Test("a black hole for new connections: an acquire fails by its timeout, saying a connection attempt is in progress")
    func blackHoleConnect() async throws {
        try await Self.withProxiedPool(configure: { $0.pool.minimumSize = 0 }) { pool, proxy in
            proxy.mode = .blackHole
            let start = ContinuousClock.now
            let error = await #expect(throws: ResourcePoolError.self) {
                try await pool.query("SELECT \(Int32(1))", timeout: .seconds(1))
            }
            #expect(start.duration(to: .now) < .seconds(4))
            #expect(error?.code == .timeout)
            #expect(error?.message.contains("is being created") == true)
            proxy.mode = .forward
            // The attempt in the black hole ends by its connect timeout (2 s); then the pool connects again.
            var value: Int32?
            for _ in 0..<20 where value == nil {
                value = try? await pool.query("SELECT \(Int32(9))", timeout: .seconds(5)).singleValue(Int32.self)
            }
            #expect(value == 9)
        }
    }

    @Test("refused connections: acquires fail within their timeout, and the pool recovers when the port is back")
    func refused() async throws {
        try await Self.withProxiedPool(configure: { $0.pool.minimumSize = 0 }) { pool, proxy in
            proxy.refuse()
            let start = ContinuousClock.now
            let error = await #expect(throws: ResourcePoolError.self) {
                try await pool.query("SELECT \(Int32(1))", timeout: .seconds(1))
            }
            #expect(start.duration(to: .now) < .seconds(3))
            #expect(error?.code == .timeout || error?.code == .circuitBreakerOpen)
            try proxy.resume()
            var value: Int32?
            for _ in 0..<50 where value == nil {
                value = try? await pool.query("SELECT \(Int32(10))", timeout: .seconds(5)).singleValue(Int32.self)
                if value == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(value == 10)
        }
    }
}
