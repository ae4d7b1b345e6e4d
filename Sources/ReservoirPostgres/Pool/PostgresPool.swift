import CoreMetrics
import Logging
import Tracing
import Reservoir
import ServiceLifecycle

/// A pool of PostgreSQL connections: `ResourcePool` specialised with PostgreSQL-aware hooks, with the query API
/// on the pool itself.
///
/// ```swift
/// let pool = try PostgresPool(configuration: configuration, logger: logger)
/// // In a ServiceGroup, or: group.addTask { try await pool.run() }
/// let rows = try await pool.query("SELECT name FROM users WHERE id = \(id)")
/// try await pool.withTransaction { transaction in
///     try await transaction.execute("UPDATE accounts SET balance = balance - \(amount) WHERE id = \(from)")
///     try await transaction.execute("UPDATE accounts SET balance = balance + \(amount) WHERE id = \(to)")
/// }
/// ```
///
/// What it adds to the generic pool:
/// - **Validation.** Every lease checks, without a round trip, that the connection is open and that the server sent
///   nothing unprompted (a backend terminated while idle); if it did, a round trip decides. A connection idle for as long as
///   the pool's `ResourcePoolConfiguration.validation` policy says is also checked with `SELECT 1`, and after any connection error every
///   idle connection is, before its next lease. Failing connections are replaced without the caller noticing.
/// - **Dirty returns.** A connection that comes back inside a transaction (or a failed one) is rolled back before
///   anyone else can lease it, or closed if that fails; it is counted in ``Counters/dirtyReturns`` and
///   `reservoir.postgres.dirty_returns{db.client.connection.pool.name,state,lease.site}` and logged (warning) with its acquire site. A
///   connection that comes back with a command still running is closed, except a stream left part-way (a `break` out
///   of its loop, or a cancelled consumer): its drain is awaited (at most the grace period) and the connection kept.
/// - **Cancellation.** Cancelling a task during a statement sends a cancel request to the server and waits at most
///   ``Configuration/cancellationGracePeriod`` for the statement to stop; the connection goes back to the pool only
///   if it is idle again, otherwise it is closed and replaced.
/// - **Failover.** With several hosts and `target_session_attrs=read-write` (or `primary`) in the connection string,
///   a connection whose server turns read-only (a write fails with `25006` on a standby or a fenced primary, or the
///   server reports `in_hot_standby` or `default_transaction_read_only`) invalidates every connection, and new ones
///   go to the current primary; counted in ``Counters/readOnlyServerInvalidations``. See `docs/scaling.md`.
/// - **Fatal errors.** A connection that was lost or terminated by the server (SQLSTATE `57P01`, `57P02`, `57P03`)
///   is closed and replaced, and every idle connection is validated before its next lease.
/// - **Timeouts, each with its own error.** Waiting for a connection: `ResourcePoolError` (`.timeout`). Opening a
///   connection: ``PostgresError/Code/connectTimeout`` (as the pool's creation error, and as the underlying error of
///   `ResourcePoolError` (`.circuitBreakerOpen`)). Running a statement: ``PostgresError/Code/statementTimeout``.
///
/// The pool is a swift-service-lifecycle `Service`: ``run()`` must be running for connections to be opened.
public final class PostgresPool: Service, Sendable {
    /// The explicit lease type, from ``lease(timeout:fileID:line:function:)``.
    public typealias Lease = ResourceLease<PostgresConnection, ContinuousClock>

    /// The configuration the pool was created with.
    public let configuration: Configuration

    /// The generic pool underneath. Not public: leasing from it directly would skip the cancellation bound and the
    /// error translation of the query API; its statistics are ``Statistics/pool`` in ``statistics``, `invalidateAll()`
    /// is on the pool.
    package let resourcePool: ResourcePool<PostgresConnection, ContinuousClock>

    let instruments: PostgresPoolInstruments
    let logger: Logger
    /// Records an `acquire connection` span per `withConnection`, or `nil` when no tracer is configured or
    /// bootstrapped (then acquiring pays one `nil` check for tracing).
    let acquireTracer: (any Tracer)?

    /// Whether the pool records spans (a tracer was configured or bootstrapped when it was created).
    public var isTracing: Bool { acquireTracer != nil }

    /// Creates a pool. Nothing happens until ``run()`` starts.
    ///
    /// - Parameters:
    ///   - configuration: the pool's, the connections' and the PostgreSQL-specific settings; validated here.
    ///   - logger: where the pool and its connections log; it is never bootstrapped by the library.
    ///   - metricsFactory: where metrics are created (once, here); `nil` uses `MetricsSystem.factory`.
    /// - Throws: ``PostgresError`` (`.invalidConfiguration`) for any bad setting, with ``PostgresError/field``
    ///   naming it: `"statementTimeout"`, `"connection.port"`, or for the generic pool's settings `"pool.maximumSize"`
    ///   (then ``PostgresError/underlying`` is the pool's `ResourcePoolError`).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "reservoir.postgres.pool"),
        metricsFactory: (any MetricsFactory)? = nil
    ) throws(PostgresError) {
        let connectionConfiguration: PostgresConnection.Configuration
        do {
            connectionConfiguration = try configuration.connectionConfiguration()
        } catch {
            throw Self.configurationError(error)
        }
        var logger = logger
        logger[metadataKey: LogKey.poolName] = .string(configuration.pool.name)
        let instruments = PostgresPoolInstruments(
            poolName: configuration.pool.name,
            factory: metricsFactory ?? MetricsSystem.factory
        )
        var poolConfiguration = configuration.pool
        // The before-lease hook runs on every lease (the cheap check); it applies the configured policy itself to
        // decide when a round trip is needed.
        poolConfiguration.validation = .always
        let connectionLogger = logger
        let factory = ResourceFactory<PostgresConnection>(
            create: {
                try await PostgresConnection.connect(configuration: connectionConfiguration, logger: connectionLogger)
            },
            close: { connection in
                await connection.close()
            }
        )
        let poolLink = PoolLink()
        let targetSessionAttributes = connectionConfiguration["target_session_attrs"]
        let hooks = PostgresPoolHooks(
            validationIdleThreshold: configuration.pool.validation.idleThreshold,
            sessionReset: configuration.sessionReset,
            gracePeriod: configuration.cancellationGracePeriod,
            requiresWritableServer: targetSessionAttributes == "read-write" || targetSessionAttributes == "primary",
            poolLink: poolLink,
            instruments: instruments,
            logger: logger
        )
        do {
            self.resourcePool = try ResourcePool(
                configuration: poolConfiguration,
                factory: factory,
                hooks: ResourcePoolHooks(
                    beforeLease: { connection, context in try await hooks.validate(connection, context: context) },
                    afterRelease: { connection, context in await hooks.released(connection, context: context) },
                    keepAlive: { connection in try await connection.unsafeExecuteScript("SELECT 1") }
                ),
                logger: logger,
                metricsFactory: metricsFactory
            )
        } catch {
            throw Self.configurationError(error)
        }
        poolLink.connect(resourcePool)
        self.configuration = configuration
        self.instruments = instruments
        self.logger = logger
        let tracer = configuration.connection.tracer ?? InstrumentationSystem.tracer
        self.acquireTracer = tracer is NoOpTracer ? nil : tracer
    }

    /// The initialiser's one error type: a ``PostgresError`` as it is; the generic pool's `ResourcePoolError`
    /// (a bad `pool` setting) as ``PostgresError/Code/invalidConfiguration`` with its field under `pool.`.
    static func configurationError(_ error: any Error) -> PostgresError {
        switch error {
        case let error as PostgresError:
            return error
        case let error as ResourcePoolError:
            var message = error.message
            if message.hasPrefix("ResourcePoolConfiguration.") {
                message = "PostgresPool.Configuration.pool." + message.dropFirst("ResourcePoolConfiguration.".count)
            }
            return PostgresError(
                .invalidConfiguration,
                message: message,
                field: error.field.map { "pool." + $0 },
                underlying: error
            )
        default:
            return PostgresError(.invalidConfiguration, message: "\(error)", underlying: error)
        }
    }

    /// Runs the pool: opens connections, runs timers, closes connections. Returns after a graceful shutdown (or
    /// when its task is cancelled, which forces one).
    ///
    /// - Throws: `ResourcePoolError` (`.alreadyRunning`) when called a second time.
    public func run() async throws {
        try await resourcePool.run()
    }

    /// Starts a graceful shutdown: new requests fail with `ResourcePoolError` (`.shutDown`), statements in
    /// flight may finish within `ResourcePoolConfiguration.drainTimeout`, then every connection is closed and
    /// ``run()`` returns. Returns at once.
    public func triggerGracefulShutdown() {
        resourcePool.triggerGracefulShutdown()
    }

    /// Closes and replaces every connection (for example after a failover): idle ones now, leased ones when they
    /// come back.
    public func invalidateAll() {
        resourcePool.invalidateAll()
    }

    /// Everything the pool can tell about itself, in one snapshot: the generic pool's figures in
    /// ``Statistics/pool`` (connections by state, waiters, totals, rates, hold and wait times, sizing advice), and the
    /// PostgreSQL-specific counters since the pool was created (``Counters``), read directly:
    /// `pool.statistics.dirtyReturns`.
    ///
    /// Synchronous and safe to call from anywhere, a log handler or a metrics backend included.
    public var statistics: Statistics {
        Statistics(pool: resourcePool.statistics, counters: instruments.snapshot())
    }

    /// The generic pool's figures.
    @available(*, deprecated, renamed: "statistics.pool")
    public func poolStatistics() -> ResourcePoolStatistics {
        resourcePool.statistics
    }
}

extension PostgresPool {
    /// A snapshot of the pool: the generic pool's figures and the PostgreSQL-specific counters. A counter is read
    /// directly on the snapshot (`statistics.fatalErrors`), through ``counters``.
    @dynamicMemberLookup
    public struct Statistics: Sendable {
        /// The generic pool's figures: connections by state, waiters, totals, rates, hold and wait times, sizing
        /// advice, leaks by site.
        public var pool: ResourcePoolStatistics
        /// The PostgreSQL-specific counters since the pool was created.
        public var counters: Counters

        /// A counter of ``counters``.
        public subscript<Value>(dynamicMember keyPath: KeyPath<Counters, Value>) -> Value {
            counters[keyPath: keyPath]
        }
    }

    /// PostgreSQL-specific counters since the pool was created.
    public struct Counters: Sendable, Equatable {
        /// Connections that came back inside a transaction, a failed transaction or with a command running (a stream
        /// left part-way and drained before the release is not one).
        public var dirtyReturns = 0
        /// Dirty returns by acquire site (`File.swift:line`): where the code that leaked a transaction lives.
        public var dirtyReturnsBySite: [String: Int] = [:]
        /// Validation round trips (`SELECT 1`) made before leases.
        public var validationRoundTrips = 0
        /// Connections found broken on lease and replaced (with or without a round trip).
        public var validationFailures = 0
        /// Connections closed because they were lost or terminated by the server (57P01, 57P02, 57P03).
        public var fatalErrors = 0
        /// Statements stopped by `statement_timeout`.
        public var statementTimeouts = 0
        /// Cancelled statements after which the connection was idle again and went back to the pool.
        public var cancellationsReused = 0
        /// Cancelled statements that did not stop within the grace period: the connection was closed.
        public var cancellationsClosed = 0
        /// `DISCARD ALL` resets performed.
        public var sessionResets = 0
        /// Times a pool that needs a writable server (`target_session_attrs=read-write` or `primary`) found a
        /// connection's server read-only (promoted away from, or fenced) and invalidated every connection, so that
        /// new ones go to the current primary.
        public var readOnlyServerInvalidations = 0

        /// Creates zero counters.
        public init() {}
    }
}
