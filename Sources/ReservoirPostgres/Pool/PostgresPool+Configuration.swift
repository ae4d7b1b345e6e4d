import Reservoir

extension PostgresPool {
    /// Settings of a ``PostgresPool``: the generic pool's, the connections', and the PostgreSQL-specific ones.
    ///
    /// A struct of `var`s with documented defaults. The pool validates it when it is created and throws
    /// ``PostgresError`` (`.invalidConfiguration`) whose ``PostgresError/field`` names the first field that is wrong
    /// (`"statementTimeout"`, `"pool.maximumSize"`, `"connection"` …).
    ///
    /// ```swift
    /// var configuration = PostgresPool.Configuration(
    ///     connection: try .init(connectionString: "postgresql://app@db/app"),
    ///     name: "orders"
    /// )
    /// configuration.pool.maximumSize = 8
    /// configuration.statementTimeout = .seconds(5)
    /// let pool = try PostgresPool(configuration: configuration, logger: logger)
    /// ```
    public struct Configuration: Sendable, CustomStringConvertible, CustomReflectable {
        /// The generic pool's settings: name, sizes, acquire timeout, lifetimes, backoff, circuit breaker, leak
        /// threshold, drain timeout.
        ///
        /// Its `ResourcePoolConfiguration.validation` says when a lease first proves its connection with a round
        /// trip (`SELECT 1`): `.ifIdle(atLeast:)` (default 1 second) when the connection has been idle that long,
        /// `.always` on every lease, `.never` only after connection errors. Every lease also checks, without a
        /// round trip, that the connection is open and that the server sent nothing unprompted (a termination), and
        /// after a connection error every idle connection is validated with a round trip before its next lease,
        /// whatever the policy.
        public var pool: ResourcePoolConfiguration

        /// Where and how each connection connects, including ``PostgresConnection/Configuration/connectTimeout``
        /// (how long opening one connection may take; failures count as creation failures of the pool) and the
        /// prepared-statement cache (turned off by ``pgbouncer`` in transaction pooling).
        public var connection: PostgresConnection.Configuration

        /// The `application_name` of every connection, shown in `pg_stat_activity` so that operators can find the
        /// pool's connections. Default: the pool's name. At most 63 bytes, no NUL.
        public var applicationName: String

        /// The default `statement_timeout` of every statement on the pool's connections; `nil` (the default) keeps
        /// the server's setting. Set once per connection at connect time (no extra round trip). A statement that
        /// runs longer fails with ``PostgresError/Code/statementTimeout``.
        public var statementTimeout: Duration?

        /// What happens to a clean connection when it comes back. Default ``SessionReset/none``.
        public var sessionReset: SessionReset

        /// How long a cancelled statement may take to stop on the server after the cancel request. Past it, the
        /// connection is closed (and replaced) rather than returned in an unknown state, and the cancelled caller
        /// gets its `CancellationError` at once. Also bounds the rollback of a dirty return. Default 5 seconds.
        public var cancellationGracePeriod: Duration

        /// How PgBouncer pools this pool's connections, when it connects through PgBouncer; `nil` (the default) for
        /// a direct connection. ``PgBouncerMode/transactionPooling`` turns the statement cache off and rejects
        /// settings that rely on session state; see ``PgBouncerMode``.
        public var pgbouncer: PgBouncerMode?

        /// Creates a configuration with the documented defaults.
        ///
        /// - Parameters:
        ///   - connection: where and how to connect.
        ///   - name: the pool's name in metrics, logs and (as `application_name`) in `pg_stat_activity`.
        public init(connection: PostgresConnection.Configuration, name: String = "postgres") {
            self.pool = ResourcePoolConfiguration(name: name)
            self.connection = connection
            self.applicationName = name
            self.statementTimeout = nil
            self.sessionReset = .none
            self.cancellationGracePeriod = .seconds(5)
            self.pgbouncer = nil
        }
    }

    /// How a clean connection is reset when it comes back to the pool.
    public struct SessionReset: Sendable, Hashable, CustomStringConvertible {
        enum Base: Hashable {
            case none
            case clean
            case discardAll
        }

        let base: Base

        /// Nothing: session state (`SET` values, temporary tables, advisory locks, `LISTEN`) carries over to the
        /// next caller. Fast; right when callers do not change session state.
        public static let none = SessionReset(base: .none)

        /// Everything `DISCARD ALL` does except deallocating prepared statements (`CLOSE ALL`, `SET SESSION
        /// AUTHORIZATION DEFAULT`, `RESET ALL`, `UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`,
        /// `DISCARD SEQUENCES`), in one round trip after every lease: each caller starts from a fresh session and
        /// the statement cache stays warm. Session defaults given at connect time (`application_name`, the pool's
        /// `statement_timeout`) survive `RESET ALL`.
        public static let clean = SessionReset(base: .clean)

        /// `DISCARD ALL` after every lease (one more round trip): each caller starts from a fresh session. It also
        /// drops prepared statements, so the connection's statement cache is emptied with it and statements are
        /// prepared again on their next use.
        public static let discardAll = SessionReset(base: .discardAll)

        public var description: String {
            switch base {
            case .none: "none"
            case .clean: "clean"
            case .discardAll: "discardAll"
            }
        }
    }
}

extension PostgresPool.Configuration {
    public var description: String {
        "PostgresPool.Configuration(pool: \(pool), connection: \(connection), applicationName: \(applicationName), "
            + "statementTimeout: \(statementTimeout.map { "\($0)" } ?? "nil"), sessionReset: \(sessionReset), "
            + "cancellationGracePeriod: \(cancellationGracePeriod))"
    }

    /// What `dump()`, `Mirror` and debuggers show: every field, the connection's password replaced (see
    /// ``PostgresConnection/Configuration/customMirror``).
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "pool": pool,
                "connection": connection,
                "applicationName": applicationName,
                "statementTimeout": statementTimeout as Any,
                "sessionReset": sessionReset,
                "cancellationGracePeriod": cancellationGracePeriod,
            ],
            displayStyle: .struct
        )
    }

    /// Checks the PostgreSQL-specific fields and returns the connection configuration every connection uses.
    ///
    /// - Throws: ``PostgresError`` (`.invalidConfiguration`) naming the field.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        func invalid(_ field: String, _ problem: String) -> PostgresError {
            PostgresError(
                .invalidConfiguration,
                message: "PostgresPool.Configuration.\(field) \(problem)",
                field: field
            )
        }
        if applicationName.utf8.contains(0) { throw invalid("applicationName", "must not contain a NUL byte") }
        if applicationName.utf8.count > 63 {
            throw invalid("applicationName", "must be at most 63 bytes (got \(applicationName.utf8.count))")
        }
        if let statementTimeout, statementTimeout <= .zero {
            throw invalid("statementTimeout", "must be greater than zero (got \(statementTimeout))")
        }
        if let threshold = pool.validation.idleThreshold, threshold < .zero {
            throw invalid("pool.validation", "idle threshold must not be negative (got \(threshold))")
        }
        if cancellationGracePeriod < .zero {
            throw invalid("cancellationGracePeriod", "must not be negative (got \(cancellationGracePeriod))")
        }
        do {
            try connection.validate()
        } catch var error as PostgresError {
            error.message = "PostgresPool.Configuration.connection." + error.message
            error.field = "connection" + (error.field.map { "." + $0 } ?? "")
            throw error
        }
        var configuration = connection
        configuration.cancellationGracePeriod = cancellationGracePeriod
        try adaptForPgBouncer(&configuration)
        try configuration.set("application_name", to: applicationName)
        if let statementTimeout {
            let setting = "-c statement_timeout=\(PostgresPool.milliseconds(statementTimeout))"
            let options = configuration["options"].map { $0 + " " + setting } ?? setting
            try configuration.set("options", to: options)
        }
        return configuration
    }
}

extension PostgresPool {
    /// A duration as whole milliseconds for `statement_timeout`, rounded up so that a positive duration never
    /// becomes 0 (which would mean "no timeout").
    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return max(1, seconds * 1000 + fraction)
    }
}
