extension PostgresConnection {
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
