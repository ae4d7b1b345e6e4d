import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private, throwaway PostgreSQL server for integration tests, benchmarks and demos.
///
/// ``start(_:)`` makes a fresh folder under the temporary directory, runs `initdb` there, starts the server on a
/// Unix socket in that folder and on a free port of 127.0.0.1, and returns once it accepts connections (a second or
/// two). ``connection`` says how to reach it. ``destroy()`` stops the server and deletes the folder;
/// ``withServer(_:_:)`` does that for you, also when the body throws. When this process runs as root, the server
/// programs run as the `postgres` user, which owns the folder.
///
/// If the process dies without cleaning up (a crash, SIGKILL, a test runner timing out), a small watchdog process
/// notices and stops the server and deletes the folder. Dropping the last reference to a running server does the same.
///
/// ```swift
/// try await PostgresTestServer.withServer { server in
///     let output = try await server.psql("SELECT 1 + 1")
///     // output == "2"
///     let connectionString = server.connection.tcpConnectionString
///     // hand `connectionString` to the client under test
/// }
/// ```
///
/// All methods may be called from any task; `start()`, `stop(mode:)`, `restart(mode:)` and `destroy()` must not
/// overlap (a call made while another is in progress throws
/// ``PostgresTestServerError/Code-swift.struct/invalidState``).
public final class PostgresTestServer: Sendable {
    /// The configuration the server was started with.
    public var configuration: Configuration { cluster.configuration }
    /// How to reach the server. The port stays the same across ``stop(mode:)`` and ``start()``.
    public let connection: ConnectionDetails
    /// The server's private folder: the Unix socket, `server.log`, and `data/`. Deleted by ``destroy()``.
    public var directory: String { cluster.directory }
    /// The data folder (`PGDATA`).
    public var dataDirectory: String { cluster.dataDirectory }
    /// The server's log file (stdout and stderr of the postmaster, across restarts).
    public var logFile: String { cluster.logFile }
    /// The folder holding the server programs in use (such as `/usr/lib/postgresql/15/bin`).
    public var binaryDirectory: String { cluster.binaries.directory }

    private enum State {
        case stopped
        case transitioning
        case running(ChildProcess)
        case destroyed
    }

    let cluster: Cluster
    private let watchdog: Watchdog
    private let state: Mutex<State>
    /// The template databases and housekeeping connections behind ``withDatabase(migrations:options:_:)``.
    package let testDatabases: TestDatabases

    init(cluster: Cluster, watchdog: Watchdog, port: Int, postmaster: ChildProcess) {
        self.cluster = cluster
        self.watchdog = watchdog
        self.state = Mutex(.running(postmaster))
        self.connection = ConnectionDetails(
            socketDirectory: cluster.directory,
            port: port,
            user: cluster.configuration.user,
            database: cluster.configuration.database,
            password: cluster.password
        )
        self.testDatabases = TestDatabases(connection: connection)
    }

    deinit {
        // Best effort without awaiting: an immediate shutdown of a server still running, then the watchdog (woken by
        // the closed pipe) waits for the postmaster to exit and deletes the folder.
        let running: ChildProcess? = state.withLock { state in
            if case .running(let child) = state { return child }
            return nil
        }
        if let running {
            cluster.send(signal: SIGQUIT, to: running)
        }
        watchdog.release()
    }

    // MARK: - Life cycle

    /// Creates and starts a throwaway server.
    ///
    /// Finds the server programs, makes a private folder (owned by ``Configuration/serverUser`` when running as
    /// root), runs `initdb`, starts the server and waits until it accepts connections, then creates the configured
    /// database and roles. On any failure everything made so far is removed before the error is thrown.
    ///
    /// - Parameter configuration: How to set the server up; the defaults suit most tests.
    /// - Returns: The running server. Call ``destroy()`` when done, or use ``withServer(_:_:)`` instead.
    /// - Throws: ``PostgresTestServerError``: `.binariesNotFound` (with the package to install),
    ///   `.invalidConfiguration` naming the field, `.startFailed` or `.startTimedOut` with the log's tail, and
    ///   others; `CancellationError` when the task is cancelled during start-up.
    public static func start(_ configuration: Configuration = Configuration()) async throws -> PostgresTestServer {
        try await start(configuration, pickingPortsWith: System.freeLoopbackPort)
    }

    /// ``start(_:)`` with the free-port picker replaced, so tests can force a port collision.
    package static func start(
        _ configuration: Configuration,
        pickingPortsWith pickPort: () throws -> Int
    ) async throws -> PostgresTestServer {
        try configuration.validate()
        let environment = ProcessInfo.processInfo.environment
        let binaries = try BinaryLocator.locate(searchPath: configuration.binarySearchPath, environment: environment)
        let launcher = try Cluster.launcher(for: configuration, searchPath: binaries.toolDirectories)
        try Task.checkCancellation()
        let (directory, watchdog) = try await Cluster.makeWatchedDirectory(
            configuration: configuration,
            launcher: launcher,
            prefix: "reservoir-postgres-"
        )
        let cluster = Cluster(
            configuration: configuration,
            password: configuration.password ?? Cluster.generatePassword(),
            binaries: binaries,
            launcher: launcher,
            directory: directory,
            serverEnvironment: Cluster.cleanEnvironment(environment)
        )
        return try await launch(
            cluster,
            watchdog: watchdog,
            pickingPortsWith: pickPort,
            prepare: { try await cluster.initialize() },
            finish: { try await $0.createDatabaseAndRoles() }
        )
    }

    /// Fills a new cluster's data folder (`prepare`), starts its postmaster on a free port and runs `finish` on the
    /// running server; on any failure stops the postmaster, deletes the folder and releases the watchdog before
    /// throwing.
    static func launch(
        _ cluster: Cluster,
        watchdog: Watchdog,
        pickingPortsWith pickPort: () throws -> Int,
        prepare: () async throws -> Void,
        finish: (PostgresTestServer) async throws -> Void
    ) async throws -> PostgresTestServer {
        var postmaster: ChildProcess?
        do {
            try await prepare()
            let (port, child) = try await startFirstTime(cluster, pickPort: pickPort)
            postmaster = child
            let server = PostgresTestServer(cluster: cluster, watchdog: watchdog, port: port, postmaster: child)
            try await finish(server)
            return server
        } catch {
            if let postmaster {
                if !(await cluster.stopPostmaster(postmaster, signal: SIGQUIT, timeout: .seconds(10))) {
                    await cluster.stopPostmaster(postmaster, signal: SIGKILL, timeout: .seconds(10))
                }
            }
            try? FileManager.default.removeItem(atPath: cluster.directory)
            await watchdog.releaseAndWait()
            if let failure = error as? Cluster.StartFailure {
                throw failure.error
            }
            throw error
        }
    }

    /// Starts a throwaway server, runs `body` with it, then stops it and deletes its folder, whether `body` returns
    /// or throws (and also when the task is cancelled).
    ///
    /// - Parameters:
    ///   - configuration: How to set the server up.
    ///   - body: The code that uses the server.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws; otherwise a ``PostgresTestServerError`` from start-up or clean-up.
    public static func withServer<Result>(
        _ configuration: Configuration = Configuration(),
        _ body: (PostgresTestServer) async throws -> Result
    ) async throws -> Result {
        let server = try await start(configuration)
        let result: Result
        do {
            result = try await body(server)
        } catch {
            try? await server.destroy()
            throw error
        }
        try await server.destroy()
        return result
    }

    /// Whether the server is running (started and not stopped or destroyed).
    public var isRunning: Bool {
        state.withLock { state in
            if case .running(let child) = state { return child.isRunning }
            return false
        }
    }

    /// Starts the server again after ``stop(mode:)``, on the same data folder and port.
    ///
    /// - Throws: ``PostgresTestServerError``: `.invalidState` when it runs, is busy or was destroyed; `.startFailed`
    ///   (for example when another process took the port meanwhile) or `.startTimedOut` with the log's tail.
    public func start() async throws {
        try transition(from: "start()") { state in
            switch state {
            case .stopped: return true
            case .running(let child) where !child.isRunning: return true
            case .running: throw Self.stateError("start()", "the server is already running")
            case .transitioning: return false
            case .destroyed: return false
            }
        }
        do {
            let child = try await cluster.startPostmaster(port: connection.port)
            state.withLock { $0 = .running(child) }
        } catch {
            state.withLock { $0 = .stopped }
            if let failure = error as? Cluster.StartFailure {
                throw failure.error
            }
            throw error
        }
    }

    /// Stops the server and waits until it has exited. The data folder stays; ``start()`` runs it again.
    ///
    /// When the server does not exit within ``Configuration/shutdownTimeout``, it is shut down immediately, then
    /// killed, and the error is thrown afterwards (the server is stopped either way). Stopping a stopped server
    /// does nothing. Cancelling the calling task does not interrupt the shutdown.
    ///
    /// - Parameter mode: ``ShutdownMode/fast`` (the default), ``ShutdownMode/smart`` or ``ShutdownMode/immediate``.
    /// - Throws: ``PostgresTestServerError``: `.stopTimedOut` after escalating; `.invalidState` while another
    ///   start or stop is in progress or after ``destroy()``.
    public func stop(mode: ShutdownMode = .fast) async throws {
        let child: ChildProcess? = try state.withLock { state in
            switch state {
            case .stopped:
                return nil
            case .running(let child):
                state = .transitioning
                return child
            case .transitioning:
                throw Self.stateError("stop(mode:)", "another start or stop is in progress")
            case .destroyed:
                throw Self.stateError("stop(mode:)", "the server was destroyed")
            }
        }
        guard let child else { return }
        let error = await shutDown(child, mode: mode)
        state.withLock { $0 = .stopped }
        if let error { throw error }
    }

    /// Stops the server and starts it again on the same folder and port.
    ///
    /// - Parameter mode: How to stop it; ``ShutdownMode/fast`` by default.
    /// - Throws: What ``stop(mode:)`` and ``start()`` throw.
    public func restart(mode: ShutdownMode = .fast) async throws {
        try await stop(mode: mode)
        try await start()
    }

    /// Stops the server (immediate shutdown: the data is thrown away anyway) and deletes its folder.
    ///
    /// Afterwards the server cannot be started again. Calling it twice does nothing the second time. Cancelling the
    /// calling task does not interrupt the clean-up.
    ///
    /// - Throws: ``PostgresTestServerError``: `.stopTimedOut` when the server had to be killed (the folder is deleted
    ///   anyway), `.invalidState` while a start or stop is in progress.
    public func destroy() async throws {
        let previous: State = try state.withLock { state in
            switch state {
            case .transitioning:
                throw Self.stateError("destroy()", "a start or stop is in progress")
            case .destroyed, .stopped, .running:
                let previous = state
                state = .destroyed
                return previous
            }
        }
        var failure: PostgresTestServerError?
        switch previous {
        case .running(let child):
            failure = await shutDown(child, mode: .immediate)
        case .stopped, .transitioning, .destroyed:
            break
        }
        if case .destroyed = previous { return }
        await testDatabases.closeIdleConnections()
        try? FileManager.default.removeItem(atPath: cluster.directory)
        await watchdog.releaseAndWait()
        if let failure { throw failure }
    }

    /// Leaves the server running when this process exits, instead of having its watchdog stop it and delete its
    /// folder; ``destroy()`` still does both. Used when a test database is kept for inspection.
    func keepRunningAfterExit() {
        watchdog.keepServerAfterExit()
    }

    /// For tests of what two processes sharing this server do: a second set of template state for this server,
    /// with its own in-process cache and housekeeping connections, as another process has.
    package func independentTestDatabases() -> TestDatabases {
        TestDatabases(connection: connection)
    }

    /// A free TCP port on 127.0.0.1 (the kernel's pick), for tests that need one.
    package static func freeLoopbackPort() throws -> Int {
        try System.freeLoopbackPort()
    }

    /// For tests of the abandonment path: a function that waits (up to 30 seconds) until the watchdog has
    /// finished cleaning up, returning whether it did. Holding it does not keep the server alive.
    package func watchdogFinished() -> @Sendable () async -> Bool {
        let watchdog = self.watchdog
        return { await watchdog.waitUntilFinished(timeout: .seconds(30)) }
    }

    // MARK: - Internals

    /// Starts the postmaster for the first time, on the configured port or on a free one, retrying a port taken
    /// between the pick and the server's bind.
    static func startFirstTime(
        _ cluster: Cluster,
        pickPort: () throws -> Int
    ) async throws -> (Int, ChildProcess) {
        if let port = cluster.configuration.port {
            return (port, try await cluster.startPostmaster(port: port))
        }
        var attempt = 1
        while true {
            let port = try pickPort()
            do {
                return (port, try await cluster.startPostmaster(port: port))
            } catch let failure as Cluster.StartFailure where failure.portInUse && attempt < 8 {
                attempt += 1
            }
        }
    }

    /// Sets the superuser's password and creates the configured roles and database, over the Unix socket.
    private func createDatabaseAndRoles() async throws {
        // Keep the passwords out of the server log, also when a statement fails.
        var statements: [String] = ["SET log_statement = 'none'", "SET log_min_error_statement = 'panic'"]
        statements.append(
            "ALTER ROLE \(Self.quotedIdentifier(configuration.user)) PASSWORD \(Self.quotedLiteral(cluster.password))"
        )
        for role in configuration.roles {
            var sql = "CREATE ROLE \(Self.quotedIdentifier(role.name)) LOGIN"
            if role.isSuperuser { sql += " SUPERUSER" }
            if let password = role.password { sql += " PASSWORD \(Self.quotedLiteral(password))" }
            statements.append(sql)
        }
        if configuration.database != "postgres" {
            statements.append(
                "CREATE DATABASE \(Self.quotedIdentifier(configuration.database)) "
                    + "OWNER \(Self.quotedIdentifier(configuration.user))"
            )
        }
        var admin: AdminConnection?
        do {
            let connected = try await AdminConnection.connect(
                socketDirectory: connection.socketDirectory,
                port: connection.port,
                user: configuration.user,
                database: "postgres"
            )
            admin = connected
            for statement in statements {
                // One statement per query: CREATE DATABASE cannot run inside the implicit transaction of several.
                _ = try await connected.query(statement)
            }
            await connected.close()
        } catch {
            await admin?.close()
            // The server's message, without the statement (which may hold a password).
            throw PostgresTestServerError(
                .initializationFailed,
                message: "Could not set the superuser's password or create the configured roles and database: "
                    + "\((error as? AdminConnection.ServerError)?.message ?? "\(error)").",
                logTail: Cluster.tail(ofFile: logFile, lines: 20)
            )
        }
    }

    /// Shuts the postmaster down with `mode`, escalating to an immediate shutdown and then SIGKILL on timeout.
    private func shutDown(_ child: ChildProcess, mode: ShutdownMode) async -> PostgresTestServerError? {
        let timeout = configuration.shutdownTimeout
        if await cluster.stopPostmaster(child, signal: mode.signal, timeout: timeout) {
            return nil
        }
        if mode.signal != SIGQUIT, await cluster.stopPostmaster(child, signal: SIGQUIT, timeout: .seconds(10)) {
            return PostgresTestServerError(
                .stopTimedOut,
                message: "The server did not stop (\(mode)) within \(timeout); it was shut down immediately instead.",
                logTail: Cluster.tail(ofFile: logFile, lines: 20)
            )
        }
        await cluster.stopPostmaster(child, signal: SIGKILL, timeout: .seconds(10))
        return PostgresTestServerError(
            .stopTimedOut,
            message:
                "The server did not stop (\(mode)) within \(timeout) nor after an immediate shutdown; it was killed.",
            logTail: Cluster.tail(ofFile: logFile, lines: 20)
        )
    }

    /// Moves to `.transitioning` when `allowed` says so; throws `.invalidState` otherwise.
    private func transition(from call: String, _ allowed: (State) throws -> Bool) throws {
        try state.withLock { state in
            guard try allowed(state) else {
                if case .destroyed = state {
                    throw Self.stateError(call, "the server was destroyed")
                }
                throw Self.stateError(call, "another start or stop is in progress")
            }
            state = .transitioning
        }
    }

    private static func stateError(_ call: String, _ reason: String) -> PostgresTestServerError {
        PostgresTestServerError(.invalidState, message: "Cannot call \(call): \(reason).")
    }

    static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func quotedLiteral(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

extension PostgresTestServer {
    /// How ``PostgresTestServer/stop(mode:)`` shuts the server down (PostgreSQL's shutdown modes).
    public struct ShutdownMode: Sendable, Hashable, CustomStringConvertible {
        let signal: Int32
        private let name: String

        /// Waits for every client to disconnect, then stops (SIGTERM).
        public static let smart = ShutdownMode(signal: SIGTERM, name: "smart")
        /// Rolls back open transactions, disconnects clients and stops cleanly (SIGINT). The default.
        public static let fast = ShutdownMode(signal: SIGINT, name: "fast")
        /// Stops at once without a checkpoint, like a crash; the next start runs recovery (SIGQUIT).
        public static let immediate = ShutdownMode(signal: SIGQUIT, name: "immediate")

        /// `smart`, `fast` or `immediate`.
        public var description: String { name }
    }
}
