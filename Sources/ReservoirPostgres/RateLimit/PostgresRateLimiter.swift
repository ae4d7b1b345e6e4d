import Synchronization

/// A rate limit shared by every process that uses the same PostgreSQL database: a token bucket (GCRA) kept in one
/// table row per key, taken with one atomic statement per round trip.
///
/// ```swift
/// let limiter = try PostgresRateLimiter(
///     pool: pool,
///     configuration: .init(key: "partner-api", rate: 100, burst: 10)
/// )
/// if try await limiter.tryAcquire() { /* go */ }
/// try await limiter.acquire(permits: 2)  // waits its turn
/// ```
///
/// The same shape as `ReservoirBackpressure`'s local `RateLimiter`:
/// - ``tryAcquire(permits:)`` answers without waiting for permits (it does wait for its round trip).
/// - ``acquire(permits:deadline:)`` reserves the permits in the shared bucket, then sleeps until they are ready;
///   with a deadline it fails at once, taking nothing, when they would be ready after it.
///
/// Each round trip is one `INSERT … ON CONFLICT (key) DO UPDATE … RETURNING` statement on a pooled connection: the
/// row lock taken by the conflict makes concurrent callers (any number of processes) queue on the row, and each
/// computes the new theoretical arrival time from the one before. No advisory lock, no transaction, no second round
/// trip; the server's clock is the only clock that matters, so instances need not agree on time.
///
/// With ``Configuration/batchSize`` above 1, a request the local cache cannot serve takes up to a whole batch in its
/// round trip and keeps the surplus for the next callers of this instance: fewer round trips, at the price of permits
/// that may expire unused (see ``Configuration/cachedPermitLifetime``).
///
/// Cancellation: a caller cancelled while it sleeps until its permits are ready throws `CancellationError`; its
/// permits are not given back (the shared bucket counts them as spent). A caller cancelled during its round trip
/// gets the pool's cancellation behaviour.
///
/// The table is created on first use when ``Configuration/createsTable`` is on (the default), or beforehand by a
/// migration running ``migration(tableName:)``.
public final class PostgresRateLimiter: Sendable {
    /// Settings of a shared rate limit. Every instance that uses a key must use the same rate and burst for it.
    public struct Configuration: Sendable {
        /// The bucket's name: instances using the same key share one limit. Any non-empty text without NUL.
        public var key: String
        /// Permits per second, over all instances together; finite and above zero.
        public var rate: Double
        /// The most permits available at once, over all instances together; at least 1. Also the largest single
        /// request.
        public var burst: Int
        /// The most permits one round trip takes; the surplus is cached locally. Default 1 (no cache: every
        /// request is one round trip and the limit is exact). Between 1 and ``burst``.
        public var batchSize: Int
        /// How long cached permits stay usable after the bucket made them ready. Default 1 second. Permits unused
        /// by then are lost, so the fleet admits a little less than the rate, never more. Above zero.
        public var cachedPermitLifetime: Duration
        /// The table holding the buckets. Default `"reservoir_rate_limits"`. At most 63 bytes, no NUL.
        public var tableName: String
        /// Whether the first statement that finds no table creates it (`CREATE UNLOGGED TABLE IF NOT EXISTS`).
        /// Default `true`. Turn it off when the role has no `CREATE` right and a migration made the table.
        public var createsTable: Bool

        /// Creates a configuration with the documented defaults.
        ///
        /// - Parameters:
        ///   - key: The bucket's name, shared by the instances that share the limit.
        ///   - rate: Permits per second over all instances.
        ///   - burst: The most permits at once over all instances.
        ///   - batchSize: The most permits one round trip takes; default 1.
        public init(key: String, rate: Double, burst: Int, batchSize: Int = 1) {
            self.key = key
            self.rate = rate
            self.burst = burst
            self.batchSize = batchSize
            self.cachedPermitLifetime = .seconds(1)
            self.tableName = "reservoir_rate_limits"
            self.createsTable = true
        }

        func validate() throws(PostgresError) {
            func invalid(_ field: String, _ problem: String) -> PostgresError {
                PostgresError(
                    .invalidConfiguration,
                    message: "PostgresRateLimiter.Configuration.\(field) \(problem)",
                    field: field
                )
            }
            guard !key.isEmpty, !key.utf8.contains(0) else {
                throw invalid("key", "must be non-empty text without a NUL byte")
            }
            guard rate.isFinite, rate > 0 else {
                throw invalid("rate", "must be a finite number of permits per second above zero (got \(rate))")
            }
            guard burst >= 1 else { throw invalid("burst", "must be at least 1 (got \(burst))") }
            guard (1...burst).contains(batchSize) else {
                throw invalid("batchSize", "must be between 1 and the burst, \(burst) (got \(batchSize))")
            }
            guard cachedPermitLifetime > .zero else {
                throw invalid("cachedPermitLifetime", "must be above zero (got \(cachedPermitLifetime))")
            }
            guard !tableName.isEmpty, tableName.utf8.count <= 63, !tableName.utf8.contains(0) else {
                throw invalid("tableName", "must be 1 to 63 bytes without a NUL byte")
            }
        }
    }

    /// Counters since the limiter was created.
    public struct Statistics: Sendable, Equatable {
        /// Statements sent to the shared bucket.
        public var roundTrips = 0
        /// Permits handed out from the local cache, without a round trip.
        public var cachedGrants = 0
        /// Permits that expired in the local cache unused.
        public var expiredPermits = 0
    }

    /// The configuration the limiter was created with.
    public let configuration: Configuration

    private let pool: PostgresPool
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    /// Seconds per permit (`T`) and the burst's length in seconds (`b·T`).
    private let interval: Double
    private let burstWindow: Double
    private let acquireSQL: String
    /// The local cache; see ``PostgresRateLimiterStateMachine``.
    private let state: Mutex<PostgresRateLimiterStateMachine>
    private let roundTrips = Atomic<Int>(0)

    /// Creates a limiter on `pool`. Nothing is sent to the server until the first request.
    ///
    /// - Parameters:
    ///   - pool: The pool whose connections run the statements; it must be running.
    ///   - configuration: The limit; validated here.
    /// - Throws: ``PostgresError`` (`.invalidConfiguration`) naming the field.
    public init(pool: PostgresPool, configuration: Configuration) throws(PostgresError) {
        try configuration.validate()
        self.configuration = configuration
        self.pool = pool
        self.origin = clock.now
        self.interval = 1 / configuration.rate
        self.burstWindow = Double(configuration.burst) / configuration.rate
        self.acquireSQL = Self.acquireStatement(tableName: configuration.tableName)
        self.state = Mutex(
            PostgresRateLimiterStateMachine(
                batchSize: configuration.batchSize,
                cachedPermitLifetime: Self.nanoseconds(configuration.cachedPermitLifetime)
            )
        )
    }

    /// Takes `permits` if they are available now, without waiting for them.
    ///
    /// - Parameter permits: How many permits; default 1.
    /// - Returns: `true` when the permits were taken.
    /// - Throws: ``PostgresError`` (`.invalidArgument`) when `permits` is below 1 or above the burst (it could never
    ///   succeed); the pool's errors (`ResourcePoolError`, ``PostgresError``) when the round trip fails;
    ///   `CancellationError`.
    public func tryAcquire(permits: Int = 1) async throws -> Bool {
        try check(permits)
        switch try await take(permits: permits, maxWait: 0) {
        case .ready: return true
        case .rejected: return false
        }
    }

    /// Waits until `permits` are available and takes them.
    ///
    /// The permits are reserved in the shared bucket at once (callers of all instances are served in the order
    /// their statements reach the row), then the call sleeps until they are ready.
    ///
    /// - Parameters:
    ///   - permits: How many permits; default 1.
    ///   - deadline: If the permits would be ready only after this instant, fail at once and take nothing. A
    ///     deadline already passed accepts only permits ready now.
    /// - Throws: ``PostgresError`` (`.rateLimited`) when the deadline would be missed; (`.invalidArgument`) when
    ///   `permits` is below 1 or above the burst; the pool's errors when the round trip fails; `CancellationError`.
    public func acquire(permits: Int = 1, deadline: ContinuousClock.Instant? = nil) async throws {
        try check(permits)
        let maxWait = deadline.map { Swift.max(0, Self.nanoseconds(origin.duration(to: $0)) - now()) }
        switch try await take(permits: permits, maxWait: maxWait) {
        case .ready(let readyAt):
            let now = now()
            if readyAt > now {
                try await clock.sleep(until: origin.advanced(by: .nanoseconds(Int64(readyAt))), tolerance: nil)
            }
        case .rejected(let retryAfter):
            throw PostgresError(
                .rateLimited,
                message: "the permits would be ready in \(retryAfter), after the deadline; nothing was taken"
            )
        }
    }

    /// Waits at most `timeout` for `permits`; fails at once when they would take longer.
    ///
    /// - Parameters:
    ///   - permits: How many permits; default 1.
    ///   - timeout: The longest acceptable wait.
    /// - Throws: As ``acquire(permits:deadline:)``.
    public func acquire(permits: Int = 1, timeout: Duration) async throws {
        try await acquire(permits: permits, deadline: clock.now.advanced(by: timeout))
    }

    /// Counters since the limiter was created.
    public var statistics: Statistics {
        let (cachedGrants, expiredPermits) = state.withLock { ($0.cachedGrants, $0.expiredPermits) }
        return Statistics(
            roundTrips: roundTrips.load(ordering: .relaxed),
            cachedGrants: cachedGrants,
            expiredPermits: expiredPermits
        )
    }

    /// Creates the table if it does not exist (what the first statement does on its own when
    /// ``Configuration/createsTable`` is on).
    ///
    /// - Throws: The pool's errors.
    public func createTable() async throws {
        do {
            try await pool.execute(PostgresQuery(unsafeSQL: Self.migration(tableName: configuration.tableName)))
        } catch let error as PostgresError
            where error.sqlState == .uniqueViolation || error.sqlState == .duplicateTable
                || error.sqlState == .duplicateObject
        {
            // Scenario: two processes run CREATE TABLE IF NOT EXISTS at once; the second may fail on the catalog's
            // unique indexes (the table's row type: 42710, or 23505, or 42P07) instead of seeing the table, once the
            // first has committed. The table exists either way.
        }
    }

    /// The statement that creates the buckets' table, for a migration.
    ///
    /// The table is `UNLOGGED`: no write-ahead log per acquire. After a crash of the server its rows are gone and
    /// every bucket starts full again (one extra burst); standbys do not have it.
    ///
    /// - Parameter tableName: The table's name, as in ``Configuration/tableName``.
    /// - Returns: `CREATE UNLOGGED TABLE IF NOT EXISTS …`.
    public static func migration(tableName: String = "reservoir_rate_limits") -> String {
        """
        CREATE UNLOGGED TABLE IF NOT EXISTS \(PostgresQuery.quoteIdentifier(tableName)) (
            key text PRIMARY KEY,
            tat double precision NOT NULL,
            checked_at double precision NOT NULL,
            granted bigint NOT NULL
        )
        """
    }

    // MARK: Internals.

    private enum Outcome {
        /// The permits are taken; they may be used at `readyAt` (local nanoseconds).
        case ready(readyAt: Double)
        /// Nothing was taken.
        case rejected(retryAfter: Duration)
    }

    private func check(_ permits: Int) throws(PostgresError) {
        guard (1...configuration.burst).contains(permits) else {
            throw PostgresError(
                .invalidArgument,
                message: "asked for \(permits) permits; the limit grants 1 to its burst, \(configuration.burst), at once"
            )
        }
    }

    private func now() -> Double { Self.nanoseconds(origin.duration(to: clock.now)) }

    private static func nanoseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }

    /// Takes permits from the cache or, failing that, from the shared bucket; `maxWait` in nanoseconds.
    private func take(permits: Int, maxWait: Double?) async throws -> Outcome {
        let action = state.withLock { $0.acquireRequested(permits: permits, now: now(), maxWait: maxWait) }
        switch action {
        case .granted(let readyAt):
            return .ready(readyAt: readyAt)
        case .fetch(let minimum, let maximum):
            let reply = try await roundTrip(minimum: minimum, maximum: maximum, maxWait: maxWait.map { $0 / 1e9 })
            switch reply.decision(minimum: minimum, interval: interval, burstWindow: burstWindow) {
            case .granted(let count, let delay):
                // The delay counts from the server's decision; counting it from the reply's arrival errs late by
                // half a round trip, never early.
                let now = now()
                let readyAt = now + delay * 1e9
                state.withLock { $0.batchGranted(granted: count, requested: permits, readyAt: readyAt, now: now) }
                return .ready(readyAt: readyAt)
            case .rejected(let retryAfter):
                return .rejected(retryAfter: .nanoseconds(Int64(retryAfter * 1e9)))
            }
        }
    }

    /// Runs the acquire statement; creates the table and retries once when it is missing.
    private func roundTrip(minimum: Int, maximum: Int, maxWait: Double?) async throws -> PostgresRateLimitReply {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(configuration.key)
        bindings.append(interval)
        bindings.append(burstWindow)
        bindings.append(minimum)
        bindings.append(maximum)
        // No deadline: a wait longer than any caller's (about 31 years) keeps the arithmetic finite.
        bindings.append(maxWait ?? 1e9)
        let query = PostgresQuery(unsafeSQL: acquireSQL, bindings: bindings)
        let rows: PostgresRows
        do {
            roundTrips.add(1, ordering: .relaxed)
            rows = try await pool.query(query)
        } catch let error as PostgresError where error.sqlState == .undefinedTable && configuration.createsTable {
            try await createTable()
            roundTrips.add(1, ordering: .relaxed)
            rows = try await pool.query(query)
        }
        guard let row = rows.first else {
            throw PostgresError(.unsupported, message: "the rate limit statement returned no row")
        }
        let (tat, checkedAt, granted) = try row.decode((Double, Double, Int).self)
        return PostgresRateLimitReply(theoreticalArrivalTime: tat, checkedAt: checkedAt, granted: granted)
    }

    /// The acquire statement. Parameters: `$1` key, `$2` interval `T` (s), `$3` burst window `b·T` (s), `$4` the
    /// fewest permits accepted, `$5` the most wanted, `$6` the longest acceptable wait (s).
    ///
    /// The formula, with `now` the server's clock and `base = max(tat, now)`: the most permits ready within the
    /// wait are `g = min($5, ⌊(now + $6 + b·T − base) / T⌋)`; when `g ≥ $4` they are granted and `tat` becomes
    /// `base + g·T`, otherwise nothing changes but the reply. A new key starts with a full bucket (`tat = now`),
    /// which grants `$5 ≤ b` at once. The 0.001 permit of slack absorbs float rounding of epoch seconds (about
    /// 0.2 µs), which would otherwise refuse a permit that is exactly due.
    ///
    /// `checked_at` and `granted` hold the last statement's decision so that `RETURNING` can report it: the row
    /// lock makes them this statement's own.
    static func acquireStatement(tableName: String) -> String {
        let base = "greatest(bucket.tat, EXCLUDED.checked_at)"
        let grantable = "least($5::float8, floor((EXCLUDED.checked_at + $6 + $3 - \(base)) / $2 + 0.001))::int8"
        return """
            INSERT INTO \(PostgresQuery.quoteIdentifier(tableName)) AS bucket (key, tat, checked_at, granted)
            SELECT $1, clock.now + $5 * $2, clock.now, $5
            FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) AS clock
            ON CONFLICT (key) DO UPDATE SET
                tat = CASE WHEN \(grantable) >= $4 THEN \(base) + \(grantable) * $2 ELSE bucket.tat END,
                checked_at = EXCLUDED.checked_at,
                granted = CASE WHEN \(grantable) >= $4 THEN \(grantable) ELSE 0 END
            RETURNING tat, checked_at, granted
            """
    }
}
