extension PostgresConnection {
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
