import ReservoirPostgres
import Reservoir

/// The demo's mixed workload: point reads, short transfers in transactions, an occasional slow query, and three
/// planted faults for the operator view to catch (a lease dropped without release, a lease held past the leak
/// threshold, and a connection returned inside a transaction).
struct DemoWorkload: Sendable {
    let pool: PostgresPool
    let allowWrites: Bool
    let accounts: Int
    let figures: DemoFigures

    /// Creates the demo table (when writes are allowed) with `accounts` rows.
    func prepare() async throws {
        guard allowWrites else { return }
        try await pool.withConnection { connection in
            try await connection.unsafeExecuteScript(
                """
                CREATE TABLE IF NOT EXISTS reservoir_demo_accounts (id int4 PRIMARY KEY, balance int8 NOT NULL);
                TRUNCATE reservoir_demo_accounts;
                """
            )
            try await connection.execute(
                """
                INSERT INTO reservoir_demo_accounts (id, balance) \
                SELECT i, 1000 FROM generate_series(1, \(Int32(accounts))) AS i
                """
            )
        }
    }

    /// Drops the demo table (when writes were allowed).
    func cleanUp() async {
        guard allowWrites else { return }
        _ = try? await pool.withConnection { try await $0.unsafeExecuteScript("DROP TABLE reservoir_demo_accounts") }
    }

    /// One operation, chosen by `roll` in [0, 100): 70 % point reads, 26 % transfers (reads when writes are not
    /// allowed), 4 % slow queries.
    func operation(roll: Int, random: inout some RandomNumberGenerator) async throws {
        switch roll {
        case 0..<70:
            let id = Int32.random(in: 1...Int32(accounts), using: &random)
            try await timed { connection in
                if allowWrites {
                    _ = try await connection.query("SELECT balance FROM reservoir_demo_accounts WHERE id = \(id)")
                } else {
                    _ = try await connection.query("SELECT \(id)::int4 + 1 AS next, now() AS at")
                }
            }
        case 70..<96:
            guard allowWrites else {
                try await timed { _ = try await $0.query("SELECT count(*) FROM pg_stat_activity") }
                return
            }
            let from = Int32.random(in: 1...Int32(accounts), using: &random)
            let to = Int32.random(in: 1...Int32(accounts), using: &random)
            let amount = Int64.random(in: 1...50, using: &random)
            try await timed { connection in
                try await connection.withTransaction { transaction in
                    // Lock in id order so that concurrent transfers never deadlock.
                    let (first, second) = from < to ? (from, to) : (to, from)
                    _ = try await transaction.query(
                        "SELECT id FROM reservoir_demo_accounts WHERE id IN (\(first), \(second)) ORDER BY id FOR UPDATE"
                    )
                    try await transaction.execute(
                        "UPDATE reservoir_demo_accounts SET balance = balance - \(amount) WHERE id = \(from)"
                    )
                    try await transaction.execute(
                        "UPDATE reservoir_demo_accounts SET balance = balance + \(amount) WHERE id = \(to)"
                    )
                }
            }
        default:
            let milliseconds = Int32.random(in: 80...250, using: &random)
            try await timed { _ = try await $0.query("SELECT pg_sleep(\(milliseconds)::float8 / 1000)") }
        }
    }

    /// Leases a connection and drops the lease without releasing it: an exact leak, which the pool detects, counts,
    /// logs with this function as the site, and repairs by closing and replacing the connection.
    func plantLeak() async throws {
        let lease = try await pool.lease()
        _ = try await lease.resource.query("SELECT 'this lease is never released'")
        // `lease` ends here without release(): its deinit reports the leak.
    }

    /// Holds a lease for `duration`, past the leak threshold: reported once while held, then as recovered.
    func plantLongHold(_ duration: Duration) async throws {
        try await pool.withConnection { connection in
            _ = try await connection.query("SELECT pg_sleep(\(duration.seconds))")
        }
    }

    /// Returns a connection inside an open transaction: the pool rolls it back before anyone else can lease it,
    /// and counts a dirty return with this function as the site.
    func plantDirtyReturn() async throws {
        try await pool.withConnection { connection in
            try await connection.unsafeExecuteScript("BEGIN")
            _ = try await connection.query("SELECT 'left inside a transaction'")
        }
    }

    /// Times the wait for a connection and the time it is held, for the live view.
    private func timed(_ body: (PostgresConnection) async throws -> Void) async throws {
        let clock = ContinuousClock()
        let requested = clock.now
        do {
            try await pool.withConnection { connection in
                let acquired = clock.now
                figures.recordWait(acquired - requested)
                defer { figures.recordHold(clock.now - acquired) }
                try await body(connection)
            }
            figures.recordCompletion()
        } catch {
            figures.recordFailure()
            throw error
        }
    }
}
