import Logging

extension PostgresConnection {
    /// The isolation level of a transaction.
    public struct IsolationLevel: Sendable, Hashable, CustomStringConvertible {
        let sql: String
        /// PostgreSQL's default.
        public static let readCommitted = IsolationLevel(sql: "READ COMMITTED")
        /// Snapshot isolation for the whole transaction.
        public static let repeatableRead = IsolationLevel(sql: "REPEATABLE READ")
        /// Serializable isolation; be ready to retry on `SQLState.serializationFailure`.
        public static let serializable = IsolationLevel(sql: "SERIALIZABLE")
        public var description: String { sql }
    }

    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws or the task is cancelled.
    ///
    /// The connection belongs to the transaction while `body` runs: statements from other tasks wait until it
    /// ends, statements from `body` (on `connection` or on the ``PostgresTransaction`` handle, also from child
    /// tasks) run inside it, one at a time. Calling `withTransaction` again inside `body` opens a savepoint that
    /// is released on success and rolled back to on failure, leaving the outer transaction usable.
    ///
    /// - Parameters:
    ///   - isolation: The isolation level; `nil` uses the server's default. Ignored for nested savepoints.
    ///   - readOnly: Starts a `READ ONLY` transaction. Ignored for nested savepoints.
    ///   - body: The work to do; receives a handle for issuing statements.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (after rolling back); ``PostgresError`` when `BEGIN` or `COMMIT` fails (a
    ///   failed `COMMIT`, such as a serialization failure, means nothing was committed); `CancellationError`
    ///   when the task was cancelled (after rolling back).
    public func withTransaction<Result>(
        isolation: IsolationLevel? = nil,
        readOnly: Bool = false,
        _ body: (PostgresTransaction) async throws -> Result
    ) async throws -> Result {
        if let scope = currentScope() {
            return try await withSavepoint(scope: scope, body)
        }
        try Task.checkCancellation()
        let scope = core.makeScopeID()
        switch await core.run(.acquireSession(scope), scope: nil) {
        case .done: break
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        case .rows, .pipeline: break
        }
        defer { core.endSession(scope) }
        var begin = "BEGIN"
        if let isolation { begin += " ISOLATION LEVEL \(isolation.sql)" }
        if readOnly { begin += " READ ONLY" }
        let node = SessionScope(core: ObjectIdentifier(core), id: scope, parent: SessionScope.current)
        return try await SessionScope.$current.withValue(node) {
            try await runScript(begin, scope: scope)
            let transaction = PostgresTransaction(connection: self, depth: 0)
            let result: Result
            do {
                result = try await body(transaction)
            } catch {
                await rollBack("ROLLBACK", scope: scope)
                throw error
            }
            if Task.isCancelled {
                await rollBack("ROLLBACK", scope: scope)
                throw CancellationError()
            }
            try await runScript("COMMIT", scope: scope)
            return result
        }
    }

    private func withSavepoint<Result>(
        scope: UInt64,
        _ body: (PostgresTransaction) async throws -> Result
    ) async throws -> Result {
        try Task.checkCancellation()
        let name = "rsv_sp\(core.makeScopeID())"
        try await runScript("SAVEPOINT \(name)", scope: scope)
        let transaction = PostgresTransaction(connection: self, depth: 1)
        let result: Result
        do {
            result = try await body(transaction)
        } catch {
            await rollBack("ROLLBACK TO SAVEPOINT \(name)", scope: scope)
            throw error
        }
        if Task.isCancelled {
            await rollBack("ROLLBACK TO SAVEPOINT \(name)", scope: scope)
            throw CancellationError()
        }
        try await runScript("RELEASE SAVEPOINT \(name)", scope: scope)
        return result
    }

    private func runScript(_ sql: String, scope: UInt64) async throws {
        switch await core.run(.script(sql), scope: scope) {
        case .done, .rows, .pipeline: return
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        }
    }

    /// Rolls back even when the task is already cancelled: the cleanup must reach the server.
    private func rollBack(_ sql: String, scope: UInt64) async {
        let outcome = await Task.detached { [core] in await core.run(.script(sql), scope: scope) }.value
        if case .failure(let error) = outcome {
            logger.debug("postgres rollback failed", metadata: ["postgres.error": "\(error.message)"])
        }
    }
}

/// The handle a transaction body uses to issue statements; they run inside the transaction.
///
/// Statements issued through the connection itself from the body run inside the transaction too; the handle
/// makes the intent visible and offers ``withSavepoint(_:)``.
public struct PostgresTransaction: Sendable {
    /// The connection the transaction runs on.
    public let connection: PostgresConnection
    /// 0 for the outermost transaction, 1 inside a savepoint.
    let depth: Int

    /// Runs a statement inside the transaction.
    ///
    /// - Parameter query: The statement.
    /// - Returns: Its rows.
    /// - Throws: As ``PostgresConnection/query(_:)``.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await connection.query(query)
    }

    /// Runs a statement inside the transaction for its effect.
    ///
    /// - Parameter statement: The statement.
    /// - Returns: Its result.
    /// - Throws: As ``PostgresConnection/query(_:)``.
    @discardableResult
    public func execute(_ statement: PostgresQuery) async throws -> PostgresRows {
        try await connection.execute(statement)
    }

    /// Streams a statement's rows inside the transaction; see ``PostgresConnection/stream(_:bufferSize:)``.
    ///
    /// - Parameters:
    ///   - query: The statement.
    ///   - bufferSize: Rows read ahead.
    /// - Returns: The rows as an async sequence.
    public func stream(_ query: PostgresQuery, bufferSize: Int = 1024) -> PostgresRowSequence {
        connection.stream(query, bufferSize: bufferSize)
    }

    /// Runs `body` in a savepoint: released on success, rolled back to when `body` throws or the task is
    /// cancelled, leaving the enclosing transaction usable.
    ///
    /// - Parameter body: The work to do inside the savepoint.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, after rolling back to the savepoint.
    public func withSavepoint<Result>(_ body: (PostgresTransaction) async throws -> Result) async throws -> Result {
        try await connection.withTransaction(body)
    }
}
