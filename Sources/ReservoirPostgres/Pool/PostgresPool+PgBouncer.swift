extension PostgresPool {
    /// How PgBouncer pools the connections this pool opens to it; set it in ``Configuration/pgbouncer``.
    ///
    /// PgBouncer multiplexes the connections of many clients (many instances of a service, each with its own pool)
    /// onto few server connections. What a client may rely on depends on its `pool_mode`:
    ///
    /// - ``transactionPooling``: each transaction (each statement outside one) may run on a different server
    ///   connection, shared with other clients. Nothing set on the session survives the transaction: prepared
    ///   statements, `SET`, temporary tables, advisory locks, `LISTEN`. The mode turns the prepared-statement cache
    ///   off (PgBouncer before 1.21 has no protocol-level prepared statements: the 1.18 of Debian 12 sends a named
    ///   statement prepared on one server connection to another, which fails with `26000`), and rejects settings that
    ///   rely on session state: ``Configuration/sessionReset`` other than ``SessionReset/none`` (a reset would run
    ///   on whichever server connection PgBouncer picks, and PgBouncer owns the server sessions anyway).
    /// - ``sessionPooling``: a client keeps one server connection for as long as it is connected, and PgBouncer runs
    ///   its `server_reset_query` (`DISCARD ALL` by default) when it disconnects; everything works as directly, the
    ///   statement cache included, but PgBouncer saves no server connections while the pool holds its own open.
    ///
    /// In both modes PgBouncer refuses the `options` startup parameter (unless listed in its
    /// `ignore_startup_parameters`, and then it drops it), so ``Configuration/statementTimeout`` and an `options`
    /// keyword in the connection string are rejected: set `statement_timeout` on the role or database instead
    /// (`ALTER ROLE app SET statement_timeout = '5s'`), which PgBouncer's server connections pick up.
    public struct PgBouncerMode: Sendable, Hashable, CustomStringConvertible {
        enum Base: Hashable {
            case transactionPooling
            case sessionPooling
        }

        let base: Base

        /// PgBouncer's `pool_mode = transaction`: server connections are shared transaction by transaction.
        public static let transactionPooling = PgBouncerMode(base: .transactionPooling)

        /// PgBouncer's `pool_mode = session`: a server connection per client connection, reset when it leaves.
        public static let sessionPooling = PgBouncerMode(base: .sessionPooling)

        public var description: String {
            switch base {
            case .transactionPooling: "transactionPooling"
            case .sessionPooling: "sessionPooling"
            }
        }
    }
}

extension PostgresPool.Configuration {
    /// Checks the settings that cannot work through PgBouncer in this mode and adapts the connection configuration
    /// (the statement cache off in transaction pooling). Does nothing without a PgBouncer mode.
    ///
    /// - Parameter connection: The connection configuration being built from this configuration.
    /// - Throws: ``PostgresError`` (`.invalidConfiguration`) naming the field.
    func adaptForPgBouncer(_ connection: inout PostgresConnection.Configuration) throws {
        guard let pgbouncer else { return }
        func invalid(_ field: String, _ problem: String) -> PostgresError {
            PostgresError(
                .invalidConfiguration,
                message: "PostgresPool.Configuration.\(field) \(problem) (pgbouncer: \(pgbouncer))",
                field: field
            )
        }
        if statementTimeout != nil {
            throw invalid(
                "statementTimeout",
                "cannot reach the server through PgBouncer, which refuses the options startup parameter; set "
                    + "statement_timeout on the role or database instead (ALTER ROLE … SET statement_timeout)"
            )
        }
        if self.connection["options"] != nil {
            throw invalid(
                "connection",
                "sets the options keyword, which PgBouncer refuses as a startup parameter; set the settings on the "
                    + "role or database instead"
            )
        }
        switch pgbouncer.base {
        case .transactionPooling:
            if sessionReset != .none {
                throw invalid(
                    "sessionReset",
                    "must be none: in transaction pooling a reset would run on whichever server connection PgBouncer "
                        + "picks, and no session state survives a transaction anyway"
                )
            }
            // Named prepared statements live on one server connection; the next statement may run on another.
            connection.statementCacheCapacity = 0
        case .sessionPooling:
            break
        }
    }
}
