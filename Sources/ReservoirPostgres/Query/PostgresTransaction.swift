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
    /// **`BEGIN` travels with the first statement.** It costs no round trip of its own: the body's first statement
    /// sends it in the same pipeline (when that statement is cached or unnamed; otherwise `BEGIN` goes first). When
    /// `BEGIN` fails, that statement and every later one of the body throw its error without running, and
    /// `withTransaction` throws it even if the body caught it. Until the first statement runs, nothing is open on the
    /// server (``PostgresConnection/transactionStatus`` is `.idle`); a body that runs no statement sends nothing.
    ///
    /// **After it throws, the connection is never inside a transaction**: it is idle (rolled back) or closed.
    ///
    /// **Cancellation.** A cancellation before `COMMIT` is sent rolls back and throws `CancellationError`. Once
    /// `COMMIT` is on its way, cancelling does not stop it on the server (that would turn a transaction that may
    /// have committed into one whose outcome nobody knows): its answer is awaited for up to the connection's
    /// ``Configuration/cancellationGracePeriod``, and `withTransaction` then reports what happened — it returns
    /// normally when the transaction committed, although the task is cancelled. If the answer does not come within
    /// the grace period, or the connection breaks while `COMMIT` is in flight, the connection is closed and
    /// ``PostgresError/Code/commitOutcomeUnknown`` is thrown: the transaction may or may not have committed.
    /// The rollback after a cancellation is bounded by the same grace period (past it the connection is closed).
    ///
    /// - Parameters:
    ///   - isolationLevel: The isolation level; `nil` uses the server's default. Ignored for nested savepoints.
    ///   - readOnly: Starts a `READ ONLY` transaction. Ignored for nested savepoints.
    ///   - actor: The caller's isolation (the `isolation:` argument, `#isolation` by default), inherited so that
    ///     `body` runs where the caller does (top-level code and `@MainActor` functions can pass closures that
    ///     capture their state).
    ///   - body: The work to do; receives a handle for issuing statements.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (after rolling back); ``PostgresError`` when `BEGIN` or `COMMIT` fails (a
    ///   failed `COMMIT`, such as a serialization failure, means nothing was committed), including
    ///   `SQLState.inFailedSQLTransaction` when `body` caught a statement's error and returned normally: the
    ///   server then rolled the transaction back; ``PostgresError/Code/commitOutcomeUnknown`` as described above;
    ///   `CancellationError` when the task was cancelled before `COMMIT` (after rolling back).
    @discardableResult
    public func withTransaction<Result>(
        isolationLevel: IsolationLevel? = nil,
        readOnly: Bool = false,
        isolation actor: isolated (any Actor)? = #isolation,
        _ body: (PostgresTransaction) async throws -> Result
    ) async throws -> Result {
        if let scope = currentScope() {
            return try await withSavepoint(scope: scope, isolation: actor, body)
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
        if let isolationLevel { begin += " ISOLATION LEVEL \(isolationLevel.sql)" }
        if readOnly { begin += " READ ONLY" }
        // BEGIN goes out with the body's first statement, in the same round trip (see the documentation above).
        core.deferBegin(begin, scope: scope)
        let node = SessionScope(core: ObjectIdentifier(core), id: scope, parent: SessionScope.current)
        return try await SessionScope.$current.withValue(node) {
            let transaction = PostgresTransaction(connection: self, depth: 0)
            let result: Result
            do {
                result = try await body(transaction)
            } catch {
                if core.takeFailedBegin(scope: scope) != nil {
                    // BEGIN failed (its statement and every later one threw): nothing ran in a transaction.
                    if transactionStatus != .idle { await rollBack("ROLLBACK", scope: scope) }
                    throw error
                }
                // Once BEGIN went out, the transaction may be open (or failed) even if its statement was cancelled.
                if !core.discardUnsentBegin(scope: scope) { await rollBack("ROLLBACK", scope: scope) }
                throw error
            }
            if let failure = core.takeFailedBegin(scope: scope) {
                // The body caught BEGIN's error and returned: report it, never a transaction that did not happen.
                if transactionStatus != .idle { await rollBack("ROLLBACK", scope: scope) }
                if Task.isCancelled { throw CancellationError() }
                throw failure
            }
            let nothingRan = core.discardUnsentBegin(scope: scope)
            if Task.isCancelled {
                if !nothingRan { await rollBack("ROLLBACK", scope: scope) }
                throw CancellationError()
            }
            // A body that ran no statement opened nothing on the server: there is nothing to commit.
            if nothingRan { return result }
            TransactionTestHooks.commitWillStart?()
            return try await commit(scope: scope, result: result)
        }
    }

    /// Sends `COMMIT` and reports what happened; never cancelled on the server (see ``withTransaction(isolationLevel:readOnly:isolation:_:)``).
    private func commit<Result>(scope: UInt64, result: Result) async throws -> Result {
        let commit = await core.run(
            .query(PostgresQuery(unsafeSQL: "COMMIT"), cacheable: false),
            scope: scope,
            cancellable: false,
            expiryOutcome: .outcomeUnknown
        )
        switch commit {
        case .rows(let storage) where storage.commandTag == "ROLLBACK":
            // COMMIT in a failed transaction does not fail: the server rolls back and answers "ROLLBACK". That
            // happens when the body caught a statement's error and returned normally; report it, never hide it.
            var error = PostgresError(
                .server,
                message: "the transaction was rolled back instead of committed because a statement in it failed"
            )
            error.sqlState = .inFailedSQLTransaction
            error.statement = "COMMIT"
            throw error
        case .rows, .done, .pipeline:
            return result
        case .failure(let error) where error.code == .connectionClosed:
            // Scenario: the connection broke with COMMIT in flight. The server may have committed before the break.
            var unknown = PostgresError(
                .commitOutcomeUnknown,
                message: "the connection closed while COMMIT was in flight; the transaction may or may not have been "
                    + "committed",
                underlying: error
            )
            unknown.statement = "COMMIT"
            throw unknown
        case .failure(let error):
            // COMMIT itself failed (a deferred constraint, a serialization failure): the server rolled back.
            if transactionStatus != .idle { await rollBack("ROLLBACK", scope: scope) }
            throw error
        case .cancelled:
            // Not reachable for a command that is not cancellable; treated as an unknown outcome to be safe.
            throw PostgresError(
                .commitOutcomeUnknown,
                message: "COMMIT ended without an answer; the transaction may or may not have been committed"
            )
        }
    }

    private func withSavepoint<Result>(
        scope: UInt64,
        isolation actor: isolated (any Actor)?,
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
        do {
            try await runScript("RELEASE SAVEPOINT \(name)", scope: scope)
        } catch {
            // The body swallowed a statement's error: undo the savepoint so the outer transaction can go on.
            await rollBack("ROLLBACK TO SAVEPOINT \(name)", scope: scope)
            throw error
        }
        return result
    }

    private func runScript(_ sql: String, scope: UInt64) async throws {
        switch await core.run(.script(sql), scope: scope) {
        case .done, .rows, .pipeline: return
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        }
    }

    /// Rolls back even when the task is already cancelled: the rollback is not cancelled on the server, and it is
    /// bounded by the grace period (past it the connection is closed, which rolls back on the server too).
    private func rollBack(_ sql: String, scope: UInt64) async {
        let deadline = ContinuousClock.now.advanced(by: core.configuration.cancellationGracePeriod)
        let outcome = await core.run(.script(sql), scope: scope, cancellable: false, deadline: deadline)
        if case .failure(let error) = outcome {
            logger.debug("postgres rollback failed", metadata: [LogKey.error: "\(error)"])
        }
    }
}

/// The handle a transaction body uses to issue statements; they run inside the transaction.
///
/// Statements issued through the connection itself from the body run inside the transaction too; the handle
/// makes the intent visible and offers ``withSavepoint(isolation:_:)``.
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

    /// Runs a statement inside the transaction for its effect and returns how many rows it changed; see
    /// ``PostgresConnection/execute(_:)``.
    ///
    /// - Parameter statement: The statement.
    /// - Returns: The number of rows it changed; 0 for statements that report no count.
    /// - Throws: As ``PostgresConnection/query(_:)``.
    @discardableResult
    public func execute(_ statement: PostgresQuery) async throws -> Int {
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
    /// - Parameters:
    ///   - actor: The caller's isolation (the `isolation:` argument, `#isolation` by default), inherited so that
    ///     `body` runs where the caller does.
    ///   - body: The work to do inside the savepoint.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, after rolling back to the savepoint.
    @discardableResult
    public func withSavepoint<Result>(
        isolation actor: isolated (any Actor)? = #isolation,
        _ body: (PostgresTransaction) async throws -> Result
    ) async throws -> Result {
        try await connection.withTransaction(isolationLevel: nil, isolation: actor, body)
    }
}

/// Points where a test can act at an exact moment of a transaction's life.
package enum TransactionTestHooks {
    /// Runs after `withTransaction` decided to commit (its body returned and the task was not cancelled), just
    /// before `COMMIT` is submitted: a test cancels the task here to hit the window between the check and the send.
    @TaskLocal package static var commitWillStart: (@Sendable () -> Void)?
}
