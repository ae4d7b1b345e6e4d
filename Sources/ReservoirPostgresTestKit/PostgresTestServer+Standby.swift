import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension PostgresTestServer {
    /// Starts a streaming standby of this server: a second throwaway server, in a private folder of its own on a free
    /// port, made from a base backup of this one (`pg_basebackup -R`) and replicating from it over the private Unix
    /// socket. It accepts read-only connections (hot standby) once it is consistent, which is when this returns.
    ///
    /// Use it to test failover: write on this server, read on the standby, ``promote()`` the standby, stop this one.
    /// The standby has the same roles, passwords and databases; its ``connection`` differs only in the port and the
    /// socket folder. Destroy it like any server (it does not go away with this one).
    ///
    /// ```swift
    /// var configuration = PostgresTestServer.Configuration()
    /// configuration.allowsStandbys = true
    /// let primary = try await PostgresTestServer.start(configuration)
    /// let standby = try await primary.startStandby()
    /// // "host=127.0.0.1,127.0.0.1 port=\(primary.connection.port),\(standby.connection.port) target_session_attrs=read-write"
    /// ```
    ///
    /// - Returns: The running standby.
    /// - Throws: ``PostgresTestServerError``: `.invalidState` when this server is not running or was not started with
    ///   ``Configuration/allowsStandbys``; `.initializationFailed` with `pg_basebackup`'s output when the backup
    ///   fails; `.startFailed` or `.startTimedOut` with the log's tail.
    public func startStandby() async throws -> PostgresTestServer {
        guard configuration.allowsStandbys else {
            throw PostgresTestServerError(
                .invalidState,
                message: "Cannot call startStandby(): the server was not started with `allowsStandbys` "
                    + "(wal_level=minimal allows no standby)."
            )
        }
        guard isRunning else {
            throw PostgresTestServerError(
                .invalidState, message: "Cannot call startStandby(): the server is not running.")
        }
        let primary = cluster
        var standbyConfiguration = configuration
        // The standby picks its own free port; the roles and database come with the backup.
        standbyConfiguration.port = nil
        standbyConfiguration.roles = []
        let (directory, watchdog) = try await Cluster.makeWatchedDirectory(
            configuration: standbyConfiguration,
            launcher: primary.launcher,
            prefix: "reservoir-standby-"
        )
        let standby = Cluster(
            configuration: standbyConfiguration,
            password: primary.password,
            binaries: primary.binaries,
            launcher: primary.launcher,
            directory: directory,
            serverEnvironment: primary.serverEnvironment
        )
        let primaryPort = connection.port
        return try await Self.launch(
            standby,
            watchdog: watchdog,
            pickingPortsWith: System.freeLoopbackPort,
            prepare: { try await standby.initializeStandby(of: primary, primaryPort: primaryPort) },
            finish: { _ in }
        )
    }

    /// Promotes this standby to a primary (`pg_promote`), waiting up to 60 seconds until it accepts writes.
    ///
    /// Connections open on it stay open and can write afterwards; the primary it followed is left alone (stop it, as
    /// a failover would, or it goes on as a second primary on its own timeline).
    ///
    /// - Throws: ``PostgresTestServerError`` (`.invalidState`) when this server is not a standby or the promotion did
    ///   not finish in time; what ``psql(_:database:user:)`` throws.
    public func promote() async throws {
        let promoted = try await psql("SELECT pg_promote(true, 60)", database: "postgres")
        guard promoted == "t" else {
            throw PostgresTestServerError(
                .invalidState,
                message: "pg_promote() did not promote the server within 60 seconds (it printed \(promoted)).",
                logTail: Cluster.tail(ofFile: logFile, lines: 20)
            )
        }
    }

    /// Whether the server is a standby (in recovery), from `pg_is_in_recovery()`.
    ///
    /// - Throws: what ``psql(_:database:user:)`` throws.
    public func isInRecovery() async throws -> Bool {
        try await psql("SELECT pg_is_in_recovery()", database: "postgres") == "t"
    }
}
