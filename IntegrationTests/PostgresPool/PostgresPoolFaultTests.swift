import Foundation
import Glibc
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Testing

@Suite("PostgresPool under real faults")
struct PostgresPoolFaultTests {
    @Test("cancelling a query through the pool stops it on the server and the connection is reused")
    func cancellationReusesTheConnection() async throws {
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }) { pool in
            let backend = try await pool.withConnection { $0.backendProcessID }
            let name = pool.configuration.applicationName
            let task = Task { try await pool.query("SELECT pg_sleep(60)") }
            try await PoolTest.waitOnServer(
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            let next = try await pool.withConnection { connection in
                (connection.backendProcessID, try await connection.query("SELECT \(Int32(1))").singleValue(Int32.self))
            }
            #expect(next.0 == backend)
            #expect(next.1 == 1)
            #expect(pool.statistics.cancellationsReused == 1)
            #expect(pool.statistics.cancellationsClosed == 0)
        }
    }

    @Test("a cancelled query whose backend does not answer within the grace period gets its connection closed")
    func cancellationClosesAFrozenConnection() async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.cancellationGracePeriod = .milliseconds(200)
        }) { pool in
            let backend = try await pool.withConnection { $0.backendProcessID }
            let name = pool.configuration.applicationName
            let task = Task { try await pool.query("SELECT pg_sleep(60)") }
            try await PoolTest.waitOnServer(
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")
            // Freeze the backend: it can no longer act on the cancel request.
            #expect(kill(backend, SIGSTOP) == 0)
            defer { kill(backend, SIGCONT) }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            kill(backend, SIGCONT)
            #expect(pool.statistics.cancellationsClosed == 1)
            #expect(pool.statistics.fatalErrors == 0)
            let next = try await pool.withConnection { $0.backendProcessID }
            #expect(next != backend)
            // Once continued, the old backend acts on the pending cancel, finds its client gone and exits; wait for
            // that before the end-of-test check counts the pool's connections on the server.
            try await PoolTest.waitOnServer("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = \(backend)")
        }
    }

    @Test("a validation round trip to a frozen backend is bounded by the grace period, and the caller is served")
    func validationOfAFrozenConnectionIsBounded() async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.pool.validation = .always  // every lease proves its connection with a round trip
            $0.cancellationGracePeriod = .milliseconds(300)
        }) { pool in
            let backend = try await pool.withConnection { $0.backendProcessID }
            // Freeze the idle connection's backend: before the fix, the validation's SELECT 1 waited for it forever
            // (until the backend was continued), whatever the acquire timeout said.
            #expect(kill(backend, SIGSTOP) == 0)
            defer { kill(backend, SIGCONT) }
            let (value, served) = try await pool.withConnection { connection in
                (try await connection.query("SELECT \(Int32(42))").singleValue(Int32.self), connection.backendProcessID)
            }
            #expect(value == 42)
            #expect(served != backend)
            #expect(pool.statistics.validationFailures >= 1)
            kill(backend, SIGCONT)
            try await PoolTest.waitOnServer("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = \(backend)")
        }
    }

    @Test("after pg_terminate_backend on every pooled connection the next request is served on a fresh one")
    func terminatedConnectionsAreReplaced() async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.minimumSize = 2
            $0.pool.maximumSize = 2
        }) { pool in
            let name = pool.configuration.applicationName
            try await PoolTest.waitOnServer("SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = \(name)")
            _ = try await TestDatabase.withConnection { admin in
                try await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \(name)")
            }
            try await PoolTest.waitOnServer("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = \(name)")
            let value1 = try await pool.query("SELECT \(Int32(3))").singleValue(Int32.self)
            #expect(value1 == 3)
            #expect(pool.statistics.validationFailures >= 1)
        }
    }

    @Test("a connection terminated while in use is replaced, and the other idle connections are validated")
    func fatalErrorBumpsValidation() async throws {
        try await PoolTest.withPool(configure: {
            $0.pool.minimumSize = 2
            $0.pool.maximumSize = 2
            $0.pool.validation = .never
        }) { pool in
            let name = pool.configuration.applicationName
            try await PoolTest.waitOnServer("SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = \(name)")
            let task = Task { try await pool.query("SELECT pg_sleep(60)") }
            try await PoolTest.waitOnServer(
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = \(name) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")
            _ = try await TestDatabase.withConnection { admin in
                try await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \(name) AND query LIKE 'SELECT pg_sleep%'")
            }
            let error = await #expect(throws: PostgresError.self) { try await task.value }
            #expect(error?.code == .connectionClosed || error?.sqlState == .adminShutdown)
            #expect(pool.statistics.validationRoundTrips == 0)
            // Lease both connections at once, so the surviving (flagged) one is certainly among them.
            let value2 = try await pool.withConnection { first in
                try await pool.withConnection { second in
                    let one = try await first.query("SELECT \(Int32(4))").singleValue(Int32.self) ?? 0
                    let two = try await second.query("SELECT \(Int32(4))").singleValue(Int32.self) ?? 0
                    return one + two
                }
            }
            #expect(value2 == 8)
            #expect(pool.statistics.fatalErrors == 1)
            #expect(pool.statistics.validationRoundTrips >= 1)
        }
    }

    @Test("while the server is down waiters fail fast (circuit breaker), and the pool recovers when it is back")
    func serverRestart() async throws {
        let server = try await PoolTest.startServer()
        try await PoolTest.withPool(server: server, configure: {
            $0.pool.minimumSize = 1
            $0.pool.maximumSize = 2
            $0.pool.circuitBreakerThreshold = 2
            $0.pool.creationBackoff = .exponential(initial: .milliseconds(20), maximum: .milliseconds(100))
        }) { pool in
            let value3 = try await pool.query("SELECT \(Int32(1))").singleValue(Int32.self)
            #expect(value3 == 1)
            try await server.stop()
            // The idle connection's termination (57P01, sent as the server stops) reaches the pool asynchronously, on
            // the connection's reactor thread. Usually the first request's lease check sees it and waits for
            // creations, which fail until the breaker opens; on a loaded machine the request may lease the
            // connection before the termination was read, and then fails with connectionClosed. From then on
            // requests fail at once.
            let first = await #expect(throws: (any Error).self) { try await pool.query("SELECT 1") }
            if let lost = first as? PostgresError {
                #expect(lost.code == .connectionClosed)
            } else {
                #expect((first as? ResourcePoolError)?.code == .circuitBreakerOpen)
            }
            let clock = ContinuousClock()
            let start = clock.now
            let second = await #expect(throws: ResourcePoolError.self) { try await pool.query("SELECT 1") }
            #expect(second?.code == .circuitBreakerOpen)
            #expect(clock.now - start < .seconds(5))  // far below the 20 s acquire timeout
            #expect(second?.underlying is PostgresError)
            try await server.start()
            try await pool.resourcePool.waitForStatistics { !$0.circuitBreakerOpen }
            let value4 = try await pool.query("SELECT \(Int32(2))").singleValue(Int32.self)
            #expect(value4 == 2)
        }
        try await server.stop()
    }

    @Test("max_connections below the pool's maximum is handled with backoff, not a crash or a tight loop")
    func maxConnectionsBelowPoolMaximum() async throws {
        let server = try await PoolTest.startServer(settings: [
            "max_connections": "4", "superuser_reserved_connections": "0",
        ])
        try await PoolTest.withPool(server: server, configure: {
            $0.pool.maximumSize = 8
            $0.pool.circuitBreakerThreshold = nil
            $0.pool.creationBackoff = .exponential(initial: .milliseconds(20), maximum: .milliseconds(200))
        }) { pool in
            let answers = try await withThrowingTaskGroup(of: Int32.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await pool.query("SELECT \(Int32(index)) FROM pg_sleep(0.05)").singleValue(Int32.self) ?? -1
                    }
                }
                return try await group.reduce(into: [Int32]()) { $0.append($1) }
            }
            #expect(answers.sorted() == Array(0..<16))
            let statistics = pool.statistics.pool
            #expect(statistics.totals.creations <= 4 + statistics.totals.creationFailures)
            #expect(statistics.totals.creationFailures >= 1)
            #expect(statistics.totals.creationFailures < 200)
            #expect(try await PoolTest.serverConnections(of: pool) <= 4)
        }
        try await server.stop()
    }

    @Test("statement timeout, acquire timeout and connect timeout each give their own error")
    func threeTimeouts() async throws {
        // Statement timeout: pool default, and per statement.
        try await PoolTest.withPool(configure: { $0.statementTimeout = .milliseconds(100) }) { pool in
            let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT pg_sleep(10)") }
            #expect(error?.code == .statementTimeout)
            let value5 = try await pool.query("SELECT \(Int32(1))").singleValue(Int32.self)
            #expect(value5 == 1)
            #expect(pool.statistics.statementTimeouts == 1)
        }
        try await PoolTest.withPool(configure: { $0.pool.maximumSize = 1 }) { pool in
            let error = await #expect(throws: PostgresError.self) {
                try await pool.query("SELECT pg_sleep(10)", statementTimeout: .milliseconds(50))
            }
            #expect(error?.code == .statementTimeout)
            // The connection's own setting is back to the default afterwards.
            let value6 = try await pool.query("SHOW statement_timeout").singleValue(String.self)
            #expect(value6 == "0")

            // Acquire timeout: the only connection is leased.
            let lease = try await pool.lease()
            let acquire = await #expect(throws: ResourcePoolError.self) {
                try await pool.query("SELECT 1", timeout: .milliseconds(50))
            }
            #expect(acquire?.code == .timeout)
            await lease.release()
        }
        // Connect timeout: a server that accepts TCP connections but never answers.
        let blackHole = try BlackHoleListener()
        try await PoolTest.withPool(configure: {
            var connection = try PostgresConnection.Configuration(host: "127.0.0.1", port: blackHole.port, user: "app")
            connection.connectTimeout = .milliseconds(200)
            $0.connection = connection
            $0.pool.circuitBreakerThreshold = 1
        }, checkServerConnections: false) { pool in
            let error = await #expect(throws: ResourcePoolError.self) { try await pool.query("SELECT 1") }
            #expect(error?.code == .circuitBreakerOpen)
            #expect((error?.underlying as? PostgresError)?.code == .connectTimeout)
        }
    }
}
