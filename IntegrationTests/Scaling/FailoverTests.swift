import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Synchronization
import Testing

/// Failover across two throwaway servers, a primary and its streaming standby: multi-host connection strings with
/// `target_session_attrs`, a read pool on the standby, a crash of the primary under load, and a primary fenced
/// read-only while the pool is connected to it.
@Suite("Failover across hosts", .serialized, .timeLimit(.minutes(3)))
struct FailoverTests {
    /// A primary (allowing standbys) and its standby, both destroyed afterwards, also when `body` throws.
    static func withPrimaryAndStandby<Result: Sendable>(
        _ body: (_ primary: PostgresTestServer, _ standby: PostgresTestServer) async throws -> Result
    ) async throws -> Result {
        var configuration = PostgresTestServer.Configuration()
        configuration.allowsStandbys = true
        let primary = try await PostgresTestServer.start(configuration)
        let standby: PostgresTestServer
        do {
            standby = try await primary.startStandby()
        } catch {
            try? await primary.destroy()
            throw error
        }
        do {
            let result = try await body(primary, standby)
            try? await standby.destroy()
            try? await primary.destroy()
            return result
        } catch {
            try? await standby.destroy()
            try? await primary.destroy()
            throw error
        }
    }

    /// A connection string naming both servers over TCP, in this order, with `target_session_attrs`.
    static func connectionString(
        _ first: PostgresTestServer,
        _ second: PostgresTestServer,
        targetSessionAttributes: String
    ) -> String {
        // The TCP string of the first (the two share roles and passwords), with both hosts and ports.
        let single = first.connection.connectionString(
            transport: .tcp,
            options: ["target_session_attrs": targetSessionAttributes, "connect_timeout": "5"]
        )
        return single.replacingOccurrences(
            of: "host=127.0.0.1 port=\(first.connection.port) ",
            with: "host=127.0.0.1,127.0.0.1 port=\(first.connection.port),\(second.connection.port) "
        )
    }

    /// Runs `body` with a running pool on `connectionString` (the integration tests' pool settings: acquire timeout
    /// 20 s, creation backoff 10 ms doubling to 200 ms), then checks that no lease is left and shuts it down.
    static func withPool<Result: Sendable>(
        _ connectionString: String,
        maximumSize: Int,
        server: PostgresTestServer,
        _ body: (PostgresPool) async throws -> Result
    ) async throws -> Result {
        try await PoolTest.withPool(
            server: server,
            configure: { configuration in
                configuration.connection = try .init(connectionString: connectionString)
                configuration.pool.maximumSize = maximumSize
            },
            checkServerConnections: false,
            body
        )
    }

    /// The TCP port of the server the pool's next connection is on.
    static func serverPort(of pool: PostgresPool) async throws -> Int32? {
        try await pool.query("SELECT inet_server_port()").singleValue(Int32.self)
    }

    /// Creates the `orders` table on the primary and waits until the standby has it.
    static func createOrders(primary: PostgresTestServer, standby: PostgresTestServer) async throws {
        _ = try await primary.psql("CREATE TABLE orders (writer int NOT NULL, n int NOT NULL, PRIMARY KEY (writer, n))")
        try await waitForReplay(primary: primary, standby: standby)
    }

    /// Waits until the standby has replayed everything the primary has written so far (each attempt a round trip).
    static func waitForReplay(primary: PostgresTestServer, standby: PostgresTestServer) async throws {
        // The insert position: with synchronous_commit off, the last commit may not be written out yet.
        let position = try await primary.psql("SELECT pg_current_wal_insert_lsn()")
        for _ in 0..<2_000 {
            let caughtUp = try await standby.psql("SELECT pg_last_wal_replay_lsn() >= '\(position)'::pg_lsn")
            if caughtUp == "t" { return }
        }
        Issue.record("the standby did not replay the primary's WAL")
    }

    @Test("the primary crashes under load and the standby is promoted: writes resume on it, reads go on, no lease is lost")
    func primaryCrashUnderLoad() async throws {
        try await Self.withPrimaryAndStandby { primary, standby in
            try await Self.createOrders(primary: primary, standby: standby)
            let writes = Self.connectionString(primary, standby, targetSessionAttributes: "read-write")
            let reads = Self.connectionString(primary, standby, targetSessionAttributes: "prefer-standby")
            let standbyPort = Int32(standby.connection.port)

            try await Self.withPool(writes, maximumSize: 4, server: primary) { writePool in
                try await Self.withPool(reads, maximumSize: 2, server: standby) { readPool in
                    #expect(try await Self.serverPort(of: writePool) == Int32(primary.connection.port))
                    #expect(try await Self.serverPort(of: readPool) == standbyPort)
                    let load = FailoverLoad()
                    let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
                        for writer in 0..<4 {
                            group.addTask { await load.write(writer: writer, pool: writePool) }
                        }
                        for _ in 0..<2 {
                            group.addTask { await load.read(pool: readPool) }
                        }
                        // Steady load first, then the crash (an immediate shutdown: no checkpoint, clients cut).
                        _ = await load.firstWrite(after: .now, count: 50)
                        try await primary.stop(mode: .immediate)
                        let crashed = ContinuousClock.now
                        // A failover manager notices the crash after a while (not synchronisation: the outage
                        // the pool must ride out), then promotes the standby.
                        try await Task.sleep(for: .seconds(1))
                        let readsBeforePromotion = load.readCount
                        try await standby.promote()
                        let promoted = ContinuousClock.now
                        let resumed = await load.firstWrite(after: promoted, count: 1)
                        _ = await load.firstWrite(after: resumed, count: 50)
                        load.stop()
                        try await group.waitForAll()
                        return (crashed: crashed, promoted: promoted, resumed: resumed, readsBeforePromotion: readsBeforePromotion)
                    }
                    let recovery = outcome.promoted.duration(to: outcome.resumed)
                    let outage = outcome.crashed.duration(to: outcome.resumed)
                    print(
                        "failover: writes resumed \(recovery) after the promotion (\(outage) after the crash); "
                            + "\(load.writeCount) writes, \(load.failedWrites) failed during the outage, "
                            + "\(load.readCount) reads, \(load.failedReads) failed"
                    )
                    // Creation retries back off up to 200 ms here (`creationBackoff.maximum`), which bounds how long
                    // after the promotion the first new connection is tried.
                    #expect(recovery < .seconds(5))
                    // Every failure during the outage was a typed error, never a hang or an untyped one.
                    #expect(load.untypedErrors.isEmpty, "\(load.untypedErrors)")
                    // Reads went on from the standby throughout: none failed, and they continued after the crash.
                    #expect(load.failedReads == 0)
                    #expect(load.readCount > outcome.readsBeforePromotion)
                    // The writes acknowledged after the promotion are all on the new primary, which is where the pool
                    // now writes.
                    let acknowledged = load.acknowledged(after: outcome.promoted)
                    #expect(acknowledged.count >= 50)
                    let values = acknowledged.map { "(\($0.writer),\($0.n))" }.joined(separator: ",")
                    let found = try await standby.psql(
                        "SELECT count(*) FROM orders WHERE (writer, n) IN (\(values))")
                    #expect(Int(found) == acknowledged.count)
                    #expect(try await Self.serverPort(of: writePool) == standbyPort)
                    #expect(try await standby.isInRecovery() == false)
                    let statistics = writePool.statistics.pool
                    #expect(statistics.leased == 0)
                    #expect(readPool.statistics.pool.leased == 0)
                }
            }
        }
    }

    @Test("a primary fenced read-only (default_transaction_read_only) while the pool is on it: the pool moves to the other primary")
    func fencedPrimary() async throws {
        try await Self.withPrimaryAndStandby { primary, standby in
            try await Self.createOrders(primary: primary, standby: standby)
            // A switchover: the standby becomes a primary while the old one still runs, then the old one is fenced.
            try await standby.promote()
            let writes = Self.connectionString(primary, standby, targetSessionAttributes: "read-write")
            try await Self.withPool(writes, maximumSize: 2, server: primary) { pool in
                // The pool's connections open on the old primary (the first host that accepts writes).
                _ = try await pool.execute("INSERT INTO orders VALUES (0, 0)")
                #expect(try await Self.serverPort(of: pool) == Int32(primary.connection.port))

                _ = try await primary.psql(
                    "ALTER SYSTEM SET default_transaction_read_only = on;\nSELECT pg_reload_conf();")
                // pg_reload_conf() only signals the postmaster. Once a new session sees the setting, the postmaster has
                // reloaded and signalled the running backends, and the pool's connections apply it before their next
                // statement. Without this wait a write could still reach the old primary before the reload (a flaky
                // failure, about one run in five when the scaling tests ran together).
                var fenced = false
                for _ in 0..<500 where !fenced {
                    fenced = try await primary.psql("SHOW default_transaction_read_only") == "on"
                }
                try #require(fenced)

                // The pool may learn it from a failed write (25006) or from the server's report before a lease; either
                // way, at most one write per open connection fails, and then writes reach the new primary.
                var failures = 0
                var succeeded = false
                for n in 1...3 {
                    do {
                        _ = try await pool.execute("INSERT INTO orders VALUES (9, \(n))")
                        succeeded = true
                        break
                    } catch let error as PostgresError {
                        #expect(error.sqlState == .readOnlySQLTransaction)
                        failures += 1
                    }
                }
                #expect(succeeded)
                #expect(failures <= 2)
                #expect(try await Self.serverPort(of: pool) == Int32(standby.connection.port))
                #expect(pool.statistics.readOnlyServerInvalidations >= 1)
                #expect(try await standby.psql("SELECT count(*) FROM orders WHERE writer = 9") == "1")
            }
        }
    }

    @Test("the standby stops: a prefer-standby read pool moves to the primary, and the write pool does not notice")
    func standbyStops() async throws {
        try await Self.withPrimaryAndStandby { primary, standby in
            try await Self.createOrders(primary: primary, standby: standby)
            let writes = Self.connectionString(primary, standby, targetSessionAttributes: "read-write")
            let reads = Self.connectionString(primary, standby, targetSessionAttributes: "prefer-standby")
            try await Self.withPool(writes, maximumSize: 2, server: primary) { writePool in
                try await Self.withPool(reads, maximumSize: 2, server: standby) { readPool in
                    #expect(try await Self.serverPort(of: readPool) == Int32(standby.connection.port))
                    _ = try await writePool.execute("INSERT INTO orders VALUES (1, 1)")
                    try await standby.stop(mode: .fast)
                    // Each open read connection fails at most once (its server went away), then the pool reconnects
                    // to the only host left.
                    var failures = 0
                    var port: Int32?
                    for _ in 0..<4 {
                        do {
                            port = try await Self.serverPort(of: readPool)
                            break
                        } catch let error as PostgresError {
                            #expect(error.code == .connectionClosed || error.sqlState == .adminShutdown, "\(error)")
                            failures += 1
                        }
                    }
                    #expect(port == Int32(primary.connection.port))
                    #expect(failures <= 2)
                    #expect(try await readPool.query("SELECT count(*)::int4 FROM orders").singleValue(Int32.self) == 1)
                    _ = try await writePool.execute("INSERT INTO orders VALUES (1, 2)")
                    #expect(writePool.statistics.fatalErrors == 0)
                }
            }
        }
    }

    @Test("a write in a read-only transaction fails with 25006 on a writable server, and the pool keeps its connections")
    func readOnlyTransactionDoesNotInvalidate() async throws {
        let server = try await TestDatabase.server.value
        let table = TestDatabase.uniqueName("readonly")
        try await PoolTest.withPool(server: server, configure: { configuration in
            configuration.connection = try .init(
                connectionString: server.connection.connectionString(
                    transport: .tcp, options: ["target_session_attrs": "read-write"]))
            configuration.pool.maximumSize = 1
        }) { pool in
            try await pool.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (n int)"))
            let created = pool.statistics.pool.totals.creations
            await #expect(throws: PostgresError.self) {
                try await pool.withTransaction(readOnly: true) { transaction in
                    try await transaction.execute(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (1)"))
                }
            }
            try await pool.execute(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (2)"))
            #expect(pool.statistics.readOnlyServerInvalidations == 0)
            #expect(pool.statistics.pool.totals.creations == created)
            try await pool.execute(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"))
        }
    }

    @Test("startStandby() refuses a server started without allowsStandbys, naming the setting")
    func standbyNeedsReplicaWAL() async throws {
        let server = try await TestDatabase.server.value
        await #expect {
            _ = try await server.startStandby()
        } throws: { error in
            guard let error = error as? PostgresTestServerError else { return false }
            return error.code == .invalidState && error.message.contains("allowsStandbys")
        }
    }
}

/// Writers and readers that run until stopped, recording what succeeded when and how each failure looked.
final class FailoverLoad: Sendable {
    private struct State {
        var stopped = false
        var writes: [(writer: Int, n: Int, at: ContinuousClock.Instant)] = []
        var failedWrites = 0
        var reads = 0
        var failedReads = 0
        var untypedErrors: [String] = []
        var waiters: [(after: ContinuousClock.Instant, count: Int, continuation: CheckedContinuation<ContinuousClock.Instant, Never>)] = []
    }

    private let state = Mutex(State())

    var isStopped: Bool { state.withLock { $0.stopped } }
    var writeCount: Int { state.withLock { $0.writes.count } }
    var failedWrites: Int { state.withLock { $0.failedWrites } }
    var readCount: Int { state.withLock { $0.reads } }
    var failedReads: Int { state.withLock { $0.failedReads } }
    var untypedErrors: [String] { state.withLock { $0.untypedErrors } }

    func stop() { state.withLock { $0.stopped = true } }

    /// The writes acknowledged after `instant`.
    func acknowledged(after instant: ContinuousClock.Instant) -> [(writer: Int, n: Int)] {
        state.withLock { $0.writes.filter { $0.at > instant }.map { (writer: $0.writer, n: $0.n) } }
    }

    /// Waits until `count` writes have been acknowledged after `instant`; returns when the last of them was.
    func firstWrite(after instant: ContinuousClock.Instant, count: Int) async -> ContinuousClock.Instant {
        await withCheckedContinuation { continuation in
            let ready: ContinuousClock.Instant? = state.withLock { state in
                let later = state.writes.filter { $0.at > instant }
                if later.count >= count { return later[count - 1].at }
                state.waiters.append((after: instant, count: count, continuation: continuation))
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func write(writer: Int, pool: PostgresPool) async {
        var n = 0
        while !isStopped {
            n += 1
            do {
                _ = try await pool.execute("INSERT INTO orders VALUES (\(writer), \(n))")
                let now = ContinuousClock.now
                let resumed: [(CheckedContinuation<ContinuousClock.Instant, Never>, ContinuousClock.Instant)] =
                    state.withLock { state in
                        state.writes.append((writer: writer, n: n, at: now))
                        var due: [(CheckedContinuation<ContinuousClock.Instant, Never>, ContinuousClock.Instant)] = []
                        state.waiters.removeAll { waiter in
                            guard state.writes.count(where: { $0.at > waiter.after }) >= waiter.count else { return false }
                            due.append((waiter.continuation, now))
                            return true
                        }
                        return due
                    }
                for (continuation, instant) in resumed { continuation.resume(returning: instant) }
            } catch {
                record(failure: error, isWrite: true)
                // A client's retry pause: with the circuit breaker open, acquires fail at once.
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    func read(pool: PostgresPool) async {
        while !isStopped {
            do {
                _ = try await pool.query("SELECT count(*) FROM orders")
                state.withLock { $0.reads += 1 }
            } catch {
                record(failure: error, isWrite: false)
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    private func record(failure error: any Error, isWrite: Bool) {
        state.withLock { state in
            if isWrite { state.failedWrites += 1 } else { state.failedReads += 1 }
            if !(error is PostgresError || error is ResourcePoolError) {
                state.untypedErrors.append("\(type(of: error)): \(error)")
            }
        }
    }
}
