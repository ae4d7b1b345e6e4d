import CLibPQ
import Glibc

extension PostgresConnection {
    /// Whether the server sent something while the connection sat idle, with one non-blocking `poll()`.
    ///
    /// - Returns: `nil` when the connection is closed or broken; `true` when input is waiting (a termination
    ///   message, a closed socket, or a notification): the connection is suspect until a round trip succeeds.
    func idleInputPending() -> Bool? {
        core.lock.withLock {
            guard core.isConnected, let connection = core.connection, PQstatus(connection) == CONNECTION_OK else {
                return nil
            }
            guard core.active == nil else { return false }
            let socket = PQsocket(connection)
            guard socket >= 0 else { return nil }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            return poll(&descriptor, 1, 0) > 0
        }
    }

    /// Resets session state but keeps prepared statements (deadpool-postgres's "clean" recycling).
    ///
    /// - Throws: ``PostgresError`` when a statement fails; the connection should then be closed.
    func cleanSession() async throws {
        try await unsafeExecuteScript(
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
                + "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
        )
    }

    /// Runs `DISCARD ALL` and empties the statement cache, whose statements the server has just deallocated.
    ///
    /// - Throws: ``PostgresError`` when the statement fails; the connection should then be closed.
    func resetSession() async throws {
        try await unsafeExecuteScript("DISCARD ALL")
        core.lock.withLock {
            core.statementCache = StatementCache(capacity: core.statementCache.capacity)
        }
    }
}
