import Foundation

extension PostgresTestServer {
    /// A database of its own for one test, cloned from the template its migrations built.
    ///
    /// Hand ``connectionString`` (Unix socket, no password needed) or ``tcpConnectionString`` to the code under
    /// test. ``description`` and `dump` never show a password; ``tcpConnectionString`` contains the server's, so do
    /// not log it.
    public final class Database: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// The database's name, such as `test_5f2c9a1e_0b7d33c4`.
        public let name: String
        /// How to reach it: the server's details with ``ConnectionDetails/database`` set to ``name``.
        public let connection: ConnectionDetails
        /// The server the database lives on.
        public let server: PostgresTestServer
        /// The template database this one was cloned from, or `nil` for the template itself while its migrations
        /// run.
        public let templateName: String?

        init(name: String, server: PostgresTestServer, templateName: String?) {
            self.name = name
            self.server = server
            self.templateName = templateName
            var connection = server.connection
            connection.database = name
            self.connection = connection
        }

        /// A libpq keyword/value connection string over the server's Unix socket, such as
        /// `host=/tmp/reservoir-postgres-Ab3dEf port=41873 user=postgres dbname=test_5f2c9a1e_0b7d33c4`. Needs no
        /// password (the socket uses `trust`), so it is safe to print.
        public var connectionString: String { connection.unixSocketConnectionString }

        /// A libpq keyword/value connection string over TCP on 127.0.0.1, with the server's password: do not log it.
        public var tcpConnectionString: String { connection.tcpConnectionString }

        /// Runs SQL in this database through `psql` (see ``PostgresTestServer/psql(_:database:user:)``).
        ///
        /// - Parameter sql: One or more statements.
        /// - Returns: The unaligned, tuples-only output without the final line break.
        /// - Throws: What ``PostgresTestServer/psql(_:database:user:)`` throws.
        @discardableResult
        public func psql(_ sql: String) async throws -> String {
            try await server.psql(sql, database: name)
        }

        /// Drops the database now, closing any connection still open to it (`DROP DATABASE … WITH (FORCE)`).
        ///
        /// ``PostgresTestServer/withDatabase(migrations:options:_:)`` calls this for you; call it yourself after
        /// ``PostgresTestServer/makeDatabase(migrations:options:)``. Dropping twice does nothing the second time.
        ///
        /// - Throws: ``PostgresTestServerError/Code-swift.struct/sqlFailed`` when the server refuses;
        ///   `.invalidState` for the template database given to a migration closure.
        public func drop() async throws {
            guard templateName != nil else {
                throw PostgresTestServerError(
                    .invalidState,
                    message: "A migration must not drop the template database \(name) it was given."
                )
            }
            try await server.testDatabases.drop(name)
        }

        /// The name, the template and the Unix-socket connection string; never a password.
        public var description: String {
            "PostgresTestServer.Database(\(name), template: \(templateName ?? "none"), \(connectionString))"
        }

        /// The same as ``description``.
        public var debugDescription: String { description }

        /// A mirror without the password, so `dump` and test runners never print it.
        public var customMirror: Mirror {
            Mirror(
                self,
                children: [
                    "name": name, "templateName": templateName as Any, "connection": connection,
                ]
            )
        }
    }

    /// How a test database is made and what happens to it at the end.
    public struct DatabaseOptions: Sendable {
        /// Whether a database whose body threw is kept for inspection instead of dropped. Default `false`.
        ///
        /// A kept database is reported through ``report`` with its name and Unix-socket connection string (never a
        /// password), and its server is left running when the test process exits, so that you can connect to it
        /// afterwards; the report says how to stop it. Only a thrown error counts as a failure: Swift Testing's
        /// `#expect` records a failure without throwing, so use `try #require(…)` for the checks that should keep
        /// the database, or ``keepAlways``.
        public var keepOnFailure: Bool = false

        /// Whether the database is kept even when the body returns. Default `false`. For looking at what a passing
        /// test left behind; reported like ``keepOnFailure``.
        public var keepAlways: Bool = false

        /// How the server copies the template (PostgreSQL 15 and later). Default ``CloneStrategy/fileCopy``, the
        /// faster of the two on the throwaway server (see `docs/testing.md` for the measurements).
        public var cloneStrategy: CloneStrategy = .fileCopy

        /// Whether a clone for the next caller of the same migration set and strategy is made in the background
        /// while this one's test runs. Default `true`: the next test then waits only for a rename (about a
        /// millisecond) instead of a clone. The spare is dropped with the server; turn this off to measure clones
        /// themselves.
        public var preparesNextDatabase: Bool = true

        /// The start of the database's name: lowercase ASCII letters, digits and `_`, 1 to 30 characters.
        /// Default `"test"`. A name such as `"orders"` makes a kept database easier to recognise.
        public var namePrefix: String = "test"

        /// Where the report about a kept database goes. Default: standard error, one block of lines.
        public var report: @Sendable (String) -> Void = { text in
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }

        /// Creates options with the defaults.
        public init() {}

        /// Creates options.
        ///
        /// - Parameters:
        ///   - keepOnFailure: Whether a database whose body threw is kept.
        ///   - namePrefix: The start of the database's name.
        ///   - cloneStrategy: How the template is copied.
        public init(keepOnFailure: Bool = false, namePrefix: String = "test", cloneStrategy: CloneStrategy = .fileCopy)
        {
            self.keepOnFailure = keepOnFailure
            self.namePrefix = namePrefix
            self.cloneStrategy = cloneStrategy
        }
    }

    /// How `CREATE DATABASE … TEMPLATE …` copies the template (its `STRATEGY` option, PostgreSQL 15 and later).
    public struct CloneStrategy: Sendable, Hashable, CustomStringConvertible {
        let sql: String?

        /// `STRATEGY FILE_COPY`: copies the template's files after a checkpoint. With `fsync` off, as on the
        /// throwaway server, the fastest for small databases. The default.
        public static let fileCopy = CloneStrategy(sql: "FILE_COPY")
        /// `STRATEGY WAL_LOG`: copies block by block through the write-ahead log; PostgreSQL's own default since 15.
        public static let walLog = CloneStrategy(sql: "WAL_LOG")
        /// No `STRATEGY` clause: whatever the server does by default (the only choice before PostgreSQL 15, which
        /// is used there whatever is asked).
        public static let serverDefault = CloneStrategy(sql: nil)

        /// `fileCopy`, `walLog` or `serverDefault`.
        public var description: String {
            switch sql {
            case "FILE_COPY": "fileCopy"
            case "WAL_LOG": "walLog"
            default: "serverDefault"
            }
        }
    }

    // MARK: - Making test databases

    /// Runs `body` with a database of its own, cloned from the template that `migrations` built, and drops the
    /// database afterwards, whether `body` returns or throws.
    ///
    /// The first call for a migration set builds its template (the migrations run once per server, under an
    /// advisory lock, so concurrent tests and other processes using the same server wait for that one build);
    /// every call then clones it with `CREATE DATABASE … TEMPLATE …`, which takes milliseconds. Calls may run in
    /// parallel: each gets its own database, and clones never see each other's data.
    ///
    /// ```swift
    /// try await server.withDatabase(migrations: .sql("CREATE TABLE t (x int)")) { database in
    ///     // database.connectionString: hand it to the code under test
    ///     try await database.psql("INSERT INTO t VALUES (1)")
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - migrations: The schema the database starts with; ``Migrations/none`` for an empty one.
    ///   - options: Whether to keep a failed test's database, and how to clone.
    ///   - body: The test; it may open connections of its own (the drop closes any left open).
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (the database is dropped first, or kept with
    ///   ``DatabaseOptions/keepOnFailure``); otherwise ``PostgresTestServerError``: `.migrationFailed` when a
    ///   migration fails, `.sqlFailed` when creating or dropping the database does, `.invalidConfiguration` for a
    ///   bad option or migrations folder.
    public func withDatabase<Result>(
        migrations: Migrations = .none,
        options: DatabaseOptions = DatabaseOptions(),
        _ body: (Database) async throws -> Result
    ) async throws -> Result {
        let database = try await makeDatabase(migrations: migrations, options: options)
        let result: Result
        do {
            result = try await body(database)
        } catch {
            if options.keepOnFailure || options.keepAlways {
                keep(database, options: options, reason: "the test threw \(error)")
            } else {
                try? await database.drop()
            }
            throw error
        }
        if options.keepAlways {
            keep(database, options: options, reason: "keepAlways is set")
        } else {
            try await database.drop()
        }
        return result
    }

    /// Makes a database of its own for the caller, cloned from the template that `migrations` built; the caller
    /// drops it with ``Database/drop()``.
    ///
    /// Prefer ``withDatabase(migrations:options:_:)``, which drops it for you. A database that is never dropped
    /// goes away with the server. Only ``DatabaseOptions/cloneStrategy`` and ``DatabaseOptions/namePrefix`` apply
    /// here; keeping is up to the caller.
    ///
    /// - Parameters:
    ///   - migrations: The schema the database starts with.
    ///   - options: How to clone and name it.
    /// - Returns: The new database, ready for connections.
    /// - Throws: ``PostgresTestServerError``: `.migrationFailed`, `.sqlFailed`, `.invalidConfiguration`.
    public func makeDatabase(
        migrations: Migrations = .none,
        options: DatabaseOptions = DatabaseOptions()
    ) async throws -> Database {
        try await testDatabases.makeDatabase(migrations: migrations, options: options, server: self)
    }

    /// Reports a kept database and keeps its server running past the end of the test process.
    private func keep(_ database: Database, options: DatabaseOptions, reason: String) {
        keepRunningAfterExit()
        let pid = cluster.verifiedPostmasterPID().map(String.init) ?? "<postmaster pid>"
        var tcp = database.connection
        tcp.password = nil
        options.report(
            """
            PostgresTestServer kept the test database \(database.name) (\(reason)).
              psql '\(database.connectionString)'
              over TCP: \(tcp.connectionString(transport: .tcp)) plus the server's password (not printed)
              The server keeps running after the test process exits, until you stop it:
              kill -INT \(pid); rm -rf \(directory)
            """
        )
    }
}
