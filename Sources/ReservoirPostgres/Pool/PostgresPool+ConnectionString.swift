extension PostgresPool.Configuration {
    /// Creates a configuration with the documented defaults for the database a libpq connection string names.
    ///
    /// The short way to point a pool at a test database: `PostgresTestServer` (which depends on Foundation only, so
    /// it cannot name this type) hands out connection strings, and this takes one.
    ///
    /// ```swift
    /// try await server.withDatabase(migrations: migrations) { database in
    ///     let pool = try PostgresPool(
    ///         configuration: .init(connectionString: database.connectionString, name: "orders")
    ///     )
    ///     …
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - connectionString: `key=value` pairs or a `postgresql://` URI, as `psql` accepts them.
    ///   - name: The pool's name in metrics, logs and (as `application_name`) in `pg_stat_activity`.
    /// - Throws: ``PostgresError`` (`.invalidConfiguration`) when the string does not parse, as
    ///   ``PostgresConnection/Configuration/init(connectionString:)`` throws it (the password removed).
    public init(connectionString: String, name: String = "postgres") throws {
        self.init(connection: try PostgresConnection.Configuration(connectionString: connectionString), name: name)
    }
}
