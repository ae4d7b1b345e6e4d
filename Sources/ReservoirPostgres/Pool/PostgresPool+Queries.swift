import Logging
import Reservoir

extension PostgresPool {
    /// Leases a connection, runs `body` with it, and returns it to the pool on every path.
    ///
    /// The connection comes back checked: a transaction left open is rolled back (and counted as a dirty return
    /// with this call's site); a connection that broke is closed and replaced. Cancelling the task during a
    /// statement cancels it on the server; see ``Configuration/cancellationGracePeriod``. Do not let the connection
    /// escape `body`.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site, for dirty-return and leak reports (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    ///   - isolation: the caller's isolation, inherited so that `body` runs where the caller does.
    ///   - body: the work to do with the connection.
    /// - Returns: what `body` returns.
    /// - Throws: `ResourcePoolError` while acquiring (`.timeout`, `.circuitBreakerOpen` with the connect error
    ///   underneath, `.tooManyWaiters`, `.shutDown`); ``PostgresError`` from statements (`.statementTimeout` when
    ///   `statement_timeout` stopped one); `CancellationError`; or what `body` throws.
    public func withConnection<Result>(
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        guard let tracer = acquireTracer else {
            return try await resourcePool.withResource(
                timeout: timeout,
                fileID: fileID,
                line: line,
                function: function,
                isolation: isolation
            ) { connection in
                try await self.runLeased(body, on: connection, isolation: isolation)
            }
        }
        // Traced: one span for the wait, ended when the connection is in hand; the statements get their own spans.
        let span = AcquireSpan(tracer: tracer, poolName: configuration.pool.name, site: "\(fileID):\(line)")
        do {
            return try await AcquireSpan.$observation.withValue(span.observation) {
                try await resourcePool.withResource(
                    timeout: timeout,
                    fileID: fileID,
                    line: line,
                    function: function,
                    isolation: isolation
                ) { connection in
                    span.acquired()
                    return try await self.runLeased(body, on: connection, isolation: isolation)
                }
            }
        } catch {
            span.failed(error)
            throw error
        }
    }

    /// Runs `body` on a leased connection and translates its errors (statement timeouts, fatal errors).
    ///
    /// Cancellation needs nothing here: the connection bounds a cancelled statement by its grace period itself
    /// (the pool's ``Configuration/cancellationGracePeriod`` is the connections'), and the release hook reads why a
    /// connection closed. This only counts what the connection reports.
    private func runLeased<Result>(
        _ body: (PostgresConnection) async throws -> Result,
        on connection: PostgresConnection,
        isolation: isolated (any Actor)?
    ) async throws -> Result {
        let cancelledBefore = connection.cancelledCommandCount
        do {
            let value = try await body(connection)
            recordCancellations(since: cancelledBefore, on: connection)
            return value
        } catch {
            recordCancellations(since: cancelledBefore, on: connection)
            throw self.translate(error)
        }
    }

    /// The PostgreSQL I/O threads as a task executor, for `withTaskExecutorPreference` and
    /// `addTask(executorPreference:)`; see ``withPinnedExecution(isolation:_:)``.
    ///
    /// Shared by every pool and connection in the process.
    public var taskExecutor: any TaskExecutor { PostgresIOExecutor.shared }

    /// Runs `body` on the PostgreSQL I/O threads, so that the pool's statements cost no thread hop in the process.
    ///
    /// By default a task that calls the pool runs on Swift's cooperative pool: it sends its statement, suspends, and
    /// the I/O thread that reads the answer wakes a cooperative thread to continue it. Inside `body` the task's
    /// non-isolated code runs on the I/O thread itself (a task executor preference): the thread that reads an answer
    /// continues the task at once, and with many tasks in flight one wake-up serves all the answers that arrived
    /// together. With 8 tasks running point selects this cut the client CPU per statement by about a third and its
    /// context switches from about 1 to 0.3 (`docs/postgres.md`, Performance).
    ///
    /// The cost: `body`'s code shares the I/O threads (half the processors) with the I/O of every connection. Code
    /// that computes for long or blocks there delays the answers of all of them. Use it for work that mostly waits
    /// on the database (a request handler that runs a few statements), not for CPU-heavy work. Actor-isolated code
    /// called from `body` still runs on its actor.
    ///
    /// - Parameters:
    ///   - isolation: the caller's isolation, inherited: a body isolated to an actor (top-level code, `@MainActor`)
    ///     compiles and runs on its actor, where the preference does not apply.
    ///   - body: the work to run.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func withPinnedExecution<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async rethrows -> Result {
        try await withTaskExecutorPreference(PostgresIOExecutor.shared, isolation: isolation) { try await body() }
    }

    /// Runs a statement on a pooled connection and returns all its rows.
    ///
    /// Interpolated values are sent as bound parameters; the statement is prepared once per connection and reused
    /// (unless the statement cache is off).
    ///
    /// - Parameters:
    ///   - query: the statement, built with string interpolation.
    ///   - statementTimeout: a `statement_timeout` for this statement only; `nil` uses the pool's default. Costs
    ///     no extra round trip (the settings travel in one pipeline with the statement), but the statement is then
    ///     sent unprepared.
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    /// - Returns: the rows, with the command tag.
    /// - Throws: as ``withConnection(timeout:fileID:line:function:isolation:_:)``.
    @discardableResult
    public func query(
        _ query: PostgresQuery,
        statementTimeout: Duration? = nil,
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function
    ) async throws -> PostgresRows {
        if let statementTimeout {
            guard statementTimeout > .zero else {
                throw PostgresError(
                    .invalidArgument,
                    message: "statementTimeout must be greater than zero (got \(statementTimeout))"
                )
            }
            return try await withConnection(timeout: timeout, fileID: fileID, line: line, function: function) {
                try await self.run(query, statementTimeout: statementTimeout, on: $0)
            }
        }
        return try await withConnection(timeout: timeout, fileID: fileID, line: line, function: function) {
            try await $0.query(query)
        }
    }

    /// Runs a statement for its effect (`INSERT`, `UPDATE`, `DELETE`, DDL) on a pooled connection and returns how
    /// many rows it changed; use ``query(_:statementTimeout:timeout:fileID:line:function:)`` for rows.
    ///
    /// - Parameters:
    ///   - statement: the statement, built with string interpolation.
    ///   - statementTimeout: a `statement_timeout` for this statement only; `nil` uses the pool's default.
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    /// - Returns: the number of rows the statement changed; 0 for statements that report no count, such as DDL.
    /// - Throws: as ``withConnection(timeout:fileID:line:function:isolation:_:)``.
    @discardableResult
    public func execute(
        _ statement: PostgresQuery,
        statementTimeout: Duration? = nil,
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function
    ) async throws -> Int {
        try await query(
            statement,
            statementTimeout: statementTimeout,
            timeout: timeout,
            fileID: fileID,
            line: line,
            function: function
        ).affectedRowCount ?? 0
    }

    /// Runs `body` in a transaction on a pooled connection: commits when it returns, rolls back when it throws or
    /// the task is cancelled, then returns the connection.
    ///
    /// - Parameters:
    ///   - isolationLevel: the isolation level; `nil` uses the server's default.
    ///   - readOnly: starts a `READ ONLY` transaction.
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    ///   - isolation: the caller's isolation, inherited so that `body` runs where the caller does (top-level code and
    ///     `@MainActor` functions can pass closures that capture their state).
    ///   - body: the work to do; receives a handle for issuing statements.
    /// - Returns: what `body` returns.
    /// - Throws: as ``withConnection(timeout:fileID:line:function:isolation:_:)``; a failed `COMMIT` (such as a
    ///   serialization failure) means nothing was committed, and the cancellation rules of
    ///   ``PostgresConnection/withTransaction(isolationLevel:readOnly:isolation:_:)`` apply (a cancel during `COMMIT`
    ///   waits for its answer; ``PostgresError/Code/commitOutcomeUnknown`` when it never comes).
    @discardableResult
    public func withTransaction<Result>(
        isolationLevel: PostgresConnection.IsolationLevel? = nil,
        readOnly: Bool = false,
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresTransaction) async throws -> Result
    ) async throws -> Result {
        try await withConnection(
            timeout: timeout, fileID: fileID, line: line, function: function, isolation: isolation
        ) { connection in
            // The transaction's nonisolated code runs on the connection's reactor thread: each of its round trips then
            // costs one thread wake-up instead of two (the thread that reads an answer continues the task). Measured
            // with pgbench's TPC-B-like transaction at 8 and 64 clients: +39 % transactions/s and -19 % client CPU
            // on an idle machine, +4 to +9 % under load (docs/postgres.md, Performance). The connection belongs to
            // the transaction, so nothing else waits for its thread meanwhile. A body isolated to an actor still
            // runs on its actor.
            try await withTaskExecutorPreference(connection.core, isolation: isolation) {
                try await connection.withTransaction(
                    isolationLevel: isolationLevel, readOnly: readOnly, isolation: isolation, body)
            }
        }
    }

    /// Runs several statements in one round trip (libpq pipeline mode) on one pooled connection.
    ///
    /// By default each statement runs in its own implicit transaction and one failing does not affect the others;
    /// with `mode: .transaction` they take effect together or not at all (see ``PostgresPipelineMode``).
    ///
    /// - Parameters:
    ///   - queries: the statements, in order.
    ///   - mode: whether the statements are independent (default) or one transaction.
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    /// - Returns: one result per statement, in order.
    /// - Throws: only for failures of the whole batch, as ``withConnection(timeout:fileID:line:function:isolation:_:)``.
    public func pipeline(
        _ queries: [PostgresQuery],
        mode: PostgresPipelineMode = .independent,
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function
    ) async throws -> [Result<PostgresRows, PostgresError>] {
        let results = try await withConnection(timeout: timeout, fileID: fileID, line: line, function: function) {
            try await $0.pipeline(queries, mode: mode)
        }
        return results.map { result in result.mapError { self.translate($0) as? PostgresError ?? $0 } }
    }

    /// Leases a connection explicitly, for code that cannot be scoped with
    /// ``withConnection(timeout:fileID:line:function:isolation:_:)``.
    ///
    /// End it with `release()` (or `release(discarding: true)` for a connection you know is broken). The release
    /// runs the same dirty-return check. A lease dropped without release is a leak: it is logged with this call's
    /// site, counted, and its connection closed and replaced. Statements on a leased connection are not watched
    /// by the cancellation grace period, and their statement-timeout errors are not translated to
    /// ``PostgresError/Code/statementTimeout``.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for a connection; `nil` uses the pool's `acquireTimeout`.
    ///   - fileID: the acquire site (leave the default).
    ///   - line: the acquire site (leave the default).
    ///   - function: the acquire site (leave the default).
    /// - Returns: the lease.
    /// - Throws: `ResourcePoolError` or `CancellationError`.
    public func lease(
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function
    ) async throws -> Lease {
        try await resourcePool.lease(timeout: timeout, fileID: fileID, line: line, function: function)
    }

    // MARK: Internals.

    /// Runs a statement with its own `statement_timeout`: set, run, restore, in one pipelined round trip.
    func run(_ query: PostgresQuery, statementTimeout: Duration, on connection: PostgresConnection) async throws
        -> PostgresRows
    {
        let milliseconds = "\(PostgresPool.milliseconds(statementTimeout))"
        if configuration.pgbouncer == .transactionPooling {
            // Behind transaction pooling each implicit transaction may run on another server connection: a setting
            // in one and the statement in the next would miss the statement and stay on a connection someone else
            // gets. So both run in one transaction, and the setting is local to it (nothing to restore).
            let results = try await connection.pipeline(
                ["SELECT set_config('statement_timeout', \(milliseconds), true)", query],
                mode: .transaction
            )
            guard results.count == 2 else {
                throw PostgresError(.connectionClosed, message: "the pipeline ended early")
            }
            switch results[1] {
            case .success(let rows): return rows
            case .failure(let error): throw error.asStatementTimeout() ?? error
            }
        }
        let restored = configuration.statementTimeout.map { "\(PostgresPool.milliseconds($0))" } ?? "0"
        let results = try await connection.pipeline([
            "SELECT set_config('statement_timeout', \(milliseconds), false)",
            query,
            "SELECT set_config('statement_timeout', \(restored), false)",
        ])
        guard results.count == 3 else {
            throw PostgresError(.connectionClosed, message: "the pipeline ended early")
        }
        if case .failure = results[2] {
            // The connection may keep the short timeout: it must not serve anyone else.
            await connection.close()
        }
        if case .failure(let error) = results[0] { throw error }
        switch results[1] {
        case .success(let rows): return rows
        case .failure(let error): throw error.asStatementTimeout() ?? error
        }
    }

    /// Counts the statements the connection stopped for a cancelled task during one lease: reused when the
    /// connection is idle again, closed when a statement outlived the grace period and the connection broke.
    func recordCancellations(since before: Int, on connection: PostgresConnection) {
        let cancelled = connection.cancelledCommandCount &- before
        guard cancelled > 0 else { return }
        if connection.closeReason == .deadlineExpired {
            instruments.cancellation(reused: false)
            logger.warning(
                "a cancelled statement did not stop within the grace period; its connection was closed",
                metadata: [LogKey.gracePeriod: "\(configuration.cancellationGracePeriod)"]
            )
        } else if !connection.isClosed, connection.transactionStatus == .idle {
            instruments.cancellation(reused: true)
        }
    }

    /// Counts a statement-timeout failure (the driver already gave it its own code).
    func translate(_ error: any Error) -> any Error {
        if let postgresError = error as? PostgresError, postgresError.code == .statementTimeout {
            instruments.statementTimedOut()
        }
        return error
    }
}
