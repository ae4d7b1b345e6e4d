import Synchronization

extension PostgresTestServer {
    /// The state of the process's shared server: not started, starting (or started), or failed to start.
    private static let sharedStart = Mutex<Task<PostgresTestServer, any Error>?>(nil)

    /// One server for the whole test process, started with the default configuration by the first caller.
    ///
    /// Every test of the process can use it at once; give each test its own database with
    /// ``withDatabase(migrations:options:_:)`` rather than sharing tables. The server is never stopped explicitly:
    /// when the process exits, however it exits, its watchdog stops it and deletes its folder (unless a test kept a
    /// database for inspection, see ``DatabaseOptions/keepOnFailure``). Do not stop, restart or destroy it from a
    /// test. A start that failed is not remembered: the next caller tries again.
    ///
    /// ```swift
    /// let server = try await PostgresTestServer.shared
    /// try await server.withDatabase(migrations: migrations) { database in … }
    /// ```
    ///
    /// - Throws: What ``start(_:)`` throws.
    public static var shared: PostgresTestServer {
        get async throws {
            let start: Task<PostgresTestServer, any Error> = sharedStart.withLock { current in
                if let current { return current }
                // Unstructured: a cancelled first caller must not fail the start for every other test.
                let started = Task { try await PostgresTestServer.start() }
                current = started
                return started
            }
            do {
                return try await start.value
            } catch {
                sharedStart.withLock { current in
                    if current == start { current = nil }
                }
                throw error
            }
        }
    }
}
