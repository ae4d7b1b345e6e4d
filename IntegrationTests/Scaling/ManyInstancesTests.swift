import Foundation
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Synchronization
import Testing

/// Eight instances with a pool of 16 each want 128 server connections; the server allows 40.
extension ScalingLoadTests {
@Suite("Many instances against a small server", .timeLimit(.minutes(3)))
struct ManyInstancesTests {
    struct Outcome: Sendable, CustomStringConvertible {
        var succeeded = 0
        var failures: [String: Int] = [:]
        var unexpected: [String] = []
        var elapsed: Duration = .zero
        /// Connections the pools opened and failed to open (the server refusing them: 53300).
        var connectionsOpened = 0
        var connectionFailures = 0
        /// Client backends on the server right after the load, counted through one of the pools.
        var serverBackends = 0

        var failed: Int { failures.values.reduce(0, +) }
        var throughput: Double {
            let (seconds, attoseconds) = elapsed.components
            return Double(succeeded) / (Double(seconds) + Double(attoseconds) / 1e18)
        }
        var description: String {
            "succeeded=\(succeeded) failed=\(failed) \(failures.sorted { $0.key < $1.key }) "
                + "queries_per_second=\(Int(throughput)) connections_opened=\(connectionsOpened) "
                + "connection_failures=\(connectionFailures) server_backends=\(serverBackends)"
        }
    }

    final class OutcomeRecorder: Sendable {
        let state = Mutex(Outcome())
    }

    /// The kind of a failure the pool is expected to report when the server has no connection slot left, or `nil`
    /// for anything else (a crash-worthy surprise).
    static func expectedKind(of error: any Error) -> String? {
        if let error = error as? ResourcePoolError {
            if error.code == .timeout { return "acquire_timeout" }
            if error.code == .circuitBreakerOpen { return "circuit_breaker_open" }
            if error.code == .tooManyWaiters { return "too_many_waiters" }
            return nil
        }
        if let error = error as? PostgresError, error.sqlState?.rawValue == "53300" { return "too_many_connections" }
        return nil
    }

    /// Eight pools of 16, 20 callers each, running `SELECT pg_sleep(0.002)` for `duration`.
    static func run(
        connectionString: String,
        mode: PostgresPool.PgBouncerMode?,
        duration: Duration = .seconds(2)
    ) async throws -> Outcome {
        try await ScalingTest.withPools(count: 8, connectionString: connectionString, configure: { configuration in
            configuration.pool.maximumSize = 16
            // Every pool keeps asking for all 16 (128 against the server's 40), so that the direct run meets the
            // server's limit in every run, however slowly a loaded machine opens connections and serves queries.
            configuration.pool.minimumSize = 16
            configuration.pool.acquireTimeout = .seconds(1)
            configuration.pgbouncer = mode
        }) { pools in
            let outcome = OutcomeRecorder()
            let start = ContinuousClock.now
            let end = start + duration
            await withTaskGroup(of: Void.self) { group in
                for pool in pools {
                    for _ in 0..<20 {
                        group.addTask {
                            while ContinuousClock.now < end {
                                do {
                                    try await pool.execute("SELECT pg_sleep(0.002)")
                                    outcome.state.withLock { $0.succeeded += 1 }
                                } catch {
                                    outcome.state.withLock {
                                        if let kind = expectedKind(of: error) {
                                            $0.failures[kind, default: 0] += 1
                                        } else if $0.unexpected.count < 5 {
                                            $0.unexpected.append("\(error)")
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let elapsed = start.duration(to: .now)
            if mode == nil {
                // Directly, the pools below their minimum retry until the server refuses them (53300). Wait for the
                // first refusal (bounded), instead of assuming it happened within the load's two seconds.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for pool in pools {
                        group.addTask {
                            try await pool.resourcePool.waitForStatistics(timeout: .seconds(60)) {
                                $0.totals.creationFailures > 0
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
            var totals: [ResourcePoolStatistics.Totals] = []
            for pool in pools { totals.append(pool.statistics.pool.totals) }
            let backends = try await pools[0].query(
                "SELECT count(*)::int4 FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).singleValue(Int32.self) ?? 0
            return outcome.state.withLock { outcome in
                outcome.elapsed = elapsed
                outcome.connectionsOpened = totals.map(\.creations).reduce(0, +)
                outcome.connectionFailures = totals.map(\.creationFailures).reduce(0, +)
                outcome.serverBackends = Int(backends)
                return outcome
            }
        }
    }

    @Test("eight pools of 16 against max_connections = 40: directly they wait or fail with clear errors; through PgBouncer's transaction pooling every query succeeds")
    func eightPoolsOfSixteen() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.settings = ["max_connections": "40"]
        let server = try await PostgresTestServer.start(configuration)
        do {
            let direct = try await Self.run(connectionString: server.connection.unixSocketConnectionString, mode: nil)
            let bounced = try await PgBouncerProcess.with(
                server: server, settings: .init(poolMode: "transaction", defaultPoolSize: 16)
            ) { bouncer in
                try await Self.run(connectionString: bouncer.connectionString, mode: .transactionPooling)
            }
            print("many_instances_direct \(direct)")
            print("many_instances_pgbouncer \(bounced)")
            print("many_instances_throughput_ratio=\(bounced.throughput / max(direct.throughput, 1))")
            // Directly: the server refuses connections past 40; callers see only the pool's clear errors.
            #expect(direct.unexpected.isEmpty, "\(direct.unexpected)")
            #expect(direct.succeeded > 0)
            #expect(direct.connectionFailures > 0)
            #expect(direct.serverBackends <= 40)
            // Through PgBouncer: 16 server connections serve all 128 client connections, and nothing fails.
            #expect(bounced.failures.isEmpty)
            #expect(bounced.unexpected.isEmpty, "\(bounced.unexpected)")
            #expect(bounced.succeeded > 0)
            #expect(bounced.connectionFailures == 0)
            #expect(bounced.connectionsOpened >= 8 * 16)
            #expect(bounced.serverBackends <= 16)
            try await server.destroy()
        } catch {
            try? await server.destroy()
            throw error
        }
    }
}
}
