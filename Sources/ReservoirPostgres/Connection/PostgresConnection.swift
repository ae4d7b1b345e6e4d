import CLibPQ
import Synchronization
import Glibc
import Logging

/// One connection to a PostgreSQL server, driven through libpq without blocking Swift's cooperative threads.
///
/// Each connection owns one OS thread. That thread connects, waits for the server with `poll()` and reads
/// results; a calling task sends its statement itself (non-blocking) and is resumed when the answer is in. No
/// call ever blocks a thread of Swift's cooperative pool.
///
/// ```swift
/// let connection = try await PostgresConnection.connect(
///     configuration: .init(connectionString: "postgresql://app@localhost/app"),
///     logger: logger
/// )
/// let rows = try await connection.query("SELECT id, name FROM users WHERE team = \(team)")
/// for row in rows {
///     let (id, name) = try row.decode((Int, String).self)
/// }
/// await connection.close()
/// ```
///
/// **One user at a time.** A connection runs one command at a time, and the type enforces it: commands from
/// concurrent tasks queue up in order and never interleave on the wire. ``withTransaction(isolationLevel:readOnly:isolation:_:)``,
/// ``stream(_:bufferSize:)`` and ``pipeline(_:mode:)`` hold the connection for their whole duration: commands from other
/// tasks wait until they end, while commands from inside a transaction body (and its child tasks) run in it.
///
/// **Cancellation.** Cancelling the task of a running command sends a cancel request to the server (from the
/// connection's reactor thread), waits until the server has stopped the command and the connection is idle again, then
/// throws `CancellationError`. The connection stays usable.
///
/// **Closing.** Call ``close()``; a connection that is released without closing closes itself in the background.
public final class PostgresConnection: Sendable {
    let core: ConnectionCore

    /// The logger that receives connection events and server notices.
    public let logger: Logger

    /// Records a span per statement, or `nil` when no tracer is configured or bootstrapped.
    let tracing: StatementTracing?

    /// Whether statements on this connection record spans (a tracer was configured or bootstrapped when it opened).
    public var isTracing: Bool { tracing != nil }

    private init(core: ConnectionCore, logger: Logger, tracing: StatementTracing?) {
        self.core = core
        self.logger = logger
        self.tracing = tracing
    }

    deinit {
        core.requestClose()
    }

    /// Opens a connection.
    ///
    /// DNS lookups, TLS and authentication run on a thread of the connection's own, bounded by
    /// ``Configuration/connectTimeout``.
    ///
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - logger: Receives debug events and the server's notices (`NOTICE` at `.notice`, `WARNING` at `.warning`).
    /// - Returns: The open connection.
    /// - Throws: ``PostgresError`` with `.connectionFailed` (with libpq's message, never the password) or
    ///   `.connectTimeout`; `CancellationError` when the task is cancelled while connecting.
    public static func connect(
        configuration: Configuration,
        logger: Logger = Logger(label: "reservoir.postgres")
    ) async throws -> PostgresConnection {
        try Task.checkCancellation()
        let core = ConnectionCore(configuration: configuration, logger: logger)
        guard core.wakeupDescriptor >= 0 else {
            throw PostgresError(.connectionFailed, message: "could not create an eventfd (errno \(errno))")
        }
        do {
            try await core.startThread()
        } catch let error as PostgresError where error.underlying is CancellationError {
            throw CancellationError()
        }
        let tracing = core.lock.withLock { () -> StatementTracing? in
            guard let connection = core.connection else { return nil }
            func text(_ value: UnsafeMutablePointer<CChar>?) -> String? {
                value.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
            }
            return StatementTracing.make(
                configured: configuration.tracer,
                namespace: text(PQdb(connection)),
                serverAddress: text(PQhost(connection)),
                serverPort: text(PQport(connection)).flatMap { Int($0) }
            )
        }
        return PostgresConnection(core: core, logger: logger, tracing: tracing)
    }

    /// Closes the connection and waits until its thread has released it. Commands still queued fail with
    /// `.connectionClosed`. Calling it again does nothing.
    public func close() async {
        await core.close()
    }

    // MARK: Running on the connection's reactor thread.

    /// The connection's reactor thread as a task executor, for `withTaskExecutorPreference`.
    ///
    /// See ``withPinnedExecution(_:)``.
    public var taskExecutor: any TaskExecutor { core }

    /// Runs `body` on the connection's reactor thread, so that each round trip costs no thread hop.
    ///
    /// By default a calling task runs on Swift's cooperative pool: it sends its statement, suspends, and the
    /// connection's reactor thread resumes it when the answer is in, which wakes a pool thread (a few microseconds).
    /// Inside `body`, the task's non-isolated code runs on the connection's reactor thread instead (a task executor
    /// preference): the thread that reads the answer continues the task at once. Use it for loops of many short
    /// statements. Code in `body` must not block for long: it would delay this connection, and only this one.
    /// Actor-isolated code called from `body` still runs on its actor.
    ///
    /// - Parameter body: The work to run.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public func withPinnedExecution<Result>(
        _ body: () async throws -> Result
    ) async rethrows -> Result {
        try await withTaskExecutorPreference(core) { try await body() }
    }

    // MARK: Queries.

    /// Runs a statement and returns all its rows.
    ///
    /// Interpolated values are sent as bound parameters. With the statement cache on (the default), the
    /// statement is prepared on first use and reused afterwards; results arrive in binary format.
    ///
    /// - Parameter query: The statement, built with string interpolation.
    /// - Returns: The rows, with the command tag.
    /// - Throws: ``PostgresError`` (`.server` with the server's fields, `.connectionClosed`, `.encodingFailed`);
    ///   `CancellationError` when the task was cancelled (the command has then been stopped on the server).
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await run(.query(query, cacheable: true))
    }

    /// Runs a statement for its effect (`INSERT`, `UPDATE`, `DELETE`, DDL) and returns how many rows it changed;
    /// use ``query(_:)`` for rows.
    ///
    /// - Parameter statement: The statement, built with string interpolation.
    /// - Returns: The number of rows the statement inserted, updated, deleted (or selected, moved, fetched, copied);
    ///   0 for statements that report no count, such as DDL.
    /// - Throws: As ``query(_:)``.
    @discardableResult
    public func execute(_ statement: PostgresQuery) async throws -> Int {
        try await run(.query(statement, cacheable: true)).affectedRowCount ?? 0
    }

    /// Runs raw SQL text with no parameters. The name says it: never pass text built from untrusted input.
    ///
    /// One statement, extended protocol, binary results, not cached.
    ///
    /// - Parameter sql: The statement text, sent exactly as written.
    /// - Returns: The rows.
    /// - Throws: As ``query(_:)``.
    @discardableResult
    public func unsafeQuery(rawSQL sql: String) async throws -> PostgresRows {
        try await run(.query(PostgresQuery(unsafeSQL: sql), cacheable: false))
    }

    /// Runs a script of several statements separated by semicolons (simple protocol), discarding their rows.
    ///
    /// Meant for migrations and test fixtures. Never pass text built from untrusted input.
    ///
    /// - Parameter sql: The script, sent exactly as written.
    /// - Throws: ``PostgresError`` for the first failing statement; the rest of the script does not run.
    public func unsafeExecuteScript(_ sql: String) async throws {
        _ = try await run(.script(sql))
    }

    /// Runs several statements in one round trip with libpq's pipeline mode.
    ///
    /// With ``PostgresPipelineMode/independent`` (the default) each statement gets its own Sync, so each runs in its
    /// own implicit transaction and one failure does not affect the others. With ``PostgresPipelineMode/transaction``
    /// the statements run as one implicit transaction: they take effect together or not at all. Do not put
    /// `BEGIN`/`COMMIT` in a pipeline; use ``withTransaction(isolationLevel:readOnly:isolation:_:)``.
    ///
    /// - Parameters:
    ///   - queries: The statements, in order.
    ///   - mode: Whether the statements are independent (default) or one transaction.
    /// - Returns: One result per statement, in order: its rows or its error. In transaction mode, when one statement
    ///   fails every result is a failure: the failing statement's own error, and for the others an error saying they
    ///   were skipped or rolled back (its `underlying` is the failing statement's error).
    /// - Throws: Only for failures of the whole batch: a lost connection, an encoding error, cancellation.
    public func pipeline(
        _ queries: [PostgresQuery],
        mode: PostgresPipelineMode = .independent
    ) async throws -> [Result<PostgresRows, PostgresError>] {
        guard let tracing else { return try await runPipeline(queries, mode: mode) }
        return try await tracing.withSpan(
            sql: queries.first?.sql ?? "",
            parameterised: true,
            batchSize: queries.count,
            { try await runPipeline(queries, mode: mode) },
            rows: { results in results.reduce(0) { $0 + ((try? $1.get().count) ?? 0) } }
        )
    }

    private func runPipeline(
        _ queries: [PostgresQuery],
        mode: PostgresPipelineMode
    ) async throws -> [Result<PostgresRows, PostgresError>] {
        let outcome = await core.run(.pipeline(queries, transaction: mode == .transaction), scope: currentScope())
        switch outcome {
        case .pipeline(let results): return results
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        case .rows, .done: return []
        }
    }

    /// Streams the rows of a statement as they arrive, with backpressure.
    ///
    /// The statement runs when iteration starts, in libpq's single-row mode. Up to `bufferSize` rows are read
    /// ahead; then reading from the server pauses until the consumer catches up, so memory stays bounded for
    /// any result size. Stopping early (leaving the loop, dropping the iterator) cancels the statement on the
    /// server and drains the connection, which then serves the next command. Cancelling the iterating task does
    /// the same and throws `CancellationError`.
    ///
    /// - Parameters:
    ///   - query: The statement.
    ///   - bufferSize: How many rows to read ahead. Default: 1024.
    /// - Returns: An async sequence of rows; iterate it once.
    public func stream(_ query: PostgresQuery, bufferSize: Int = 1024) -> PostgresRowSequence {
        PostgresRowSequence(core: core, query: query, bufferSize: max(bufferSize, 1), scope: currentScope())
    }

    // MARK: State for pools.

    /// The server-side transaction state, as libpq reports it.
    ///
    /// Inside ``withTransaction(isolationLevel:readOnly:isolation:_:)`` it stays `.idle` until the body's first
    /// statement, which opens the transaction on the server.
    public var transactionStatus: PostgresTransactionStatus {
        core.lock.withLock {
            guard let connection = core.connection, core.isConnected else { return .unknown }
            return PostgresTransactionStatus(PQtransactionStatus(connection))
        }
    }

    /// A run-time parameter as the server last reported it (`ParameterStatus`), such as `server_version`,
    /// `in_hot_standby` or `default_transaction_read_only`; `nil` when the server has not reported it (or the
    /// connection is closed). No round trip: libpq keeps what the server sent.
    ///
    /// - Parameter name: The parameter's name.
    public func parameterStatus(_ name: String) -> String? {
        core.lock.withLock {
            guard let connection = core.connection, core.isConnected,
                let value = PQparameterStatus(connection, name)
            else { return nil }
            return String(cString: value)
        }
    }

    /// Whether the server last said that it accepts no writes: a hot standby (`in_hot_standby`), or a server whose
    /// `default_transaction_read_only` is on (how a primary is fenced). PostgreSQL 14 and later report both and
    /// update them when they change (a promotion, a reload); an older server reports neither, and this is `false`.
    public var isReadOnlyServer: Bool {
        core.lock.withLock {
            guard let connection = core.connection, core.isConnected else { return false }
            for name in ["in_hot_standby", "default_transaction_read_only"] {
                if let value = PQparameterStatus(connection, name), String(cString: value) == "on" { return true }
            }
            return false
        }
    }

    /// Whether the connection is closed (by ``close()``, by the server, or by a network failure).
    public var isClosed: Bool {
        core.lock.withLock { !core.isConnected }
    }

    /// The server process serving this connection (`pg_backend_pid()`).
    public var backendProcessID: Int32 {
        core.lock.withLock { core.backendProcessID }
    }

    /// Cheaply checks that the connection still looks usable, without a round trip or a system call.
    ///
    /// The connection's reactor thread watches the socket while the connection is idle: a terminated backend's message
    /// or a closed socket is processed there as it arrives. A connection that passes may still fail on its next
    /// statement (the network can break at any time); one that fails is certainly unusable.
    ///
    /// - Returns: `false` when the connection is closed or broken.
    public func isAlive() -> Bool {
        core.lock.withLock {
            guard core.isConnected, let connection = core.connection else { return false }
            return PQstatus(connection) == CONNECTION_OK
        }
    }

    /// Whether a command is running or waiting, or a transaction holds the connection.
    ///
    /// A pool must not hand a busy connection to someone else (for example one whose stream was abandoned and
    /// is still draining); it is idle again once the command has finished.
    public var isBusy: Bool {
        core.lock.withLock { core.machine.isBusy }
    }

    /// Why the connection ended, or `nil` while it is open.
    var closeReason: ConnectionStateMachine<Command>.CloseReason? {
        core.lock.withLock {
            if case .closed(let reason) = core.machine.state { return reason }
            return nil
        }
    }

    /// How many statements on this connection ended as cancelled because their task asked for it.
    var cancelledCommandCount: Int { core.cancelledCommands.load(ordering: .relaxed) }

    /// The number of prepared statements currently cached on this connection.
    public var cachedStatementCount: Int {
        core.lock.withLock { core.statementCache.count }
    }

    // MARK: Internals.

    func run(_ kind: CommandKind) async throws -> PostgresRows {
        guard let tracing else { return try await runUntraced(kind) }
        let sql: String
        let parameterised: Bool
        switch kind {
        case .query(let query, let cacheable):
            // Statements built by interpolation carry their values as $n parameters; raw SQL may hold literals.
            (sql, parameterised) = (query.sql, cacheable)
        case .script(let script):
            (sql, parameterised) = (script, false)
        case .pipeline, .stream, .acquireSession, .awaitIdle:
            return try await runUntraced(kind)
        }
        return try await tracing.withSpan(
            sql: sql,
            parameterised: parameterised,
            { try await runUntraced(kind) },
            rows: { $0.count }
        )
    }

    private func runUntraced(_ kind: CommandKind) async throws -> PostgresRows {
        let outcome = await core.run(kind, scope: currentScope())
        switch outcome {
        case .rows(let storage): return PostgresRows(storage: storage)
        case .done, .pipeline: return PostgresRows(storage: nil)
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        }
    }

    func currentScope() -> UInt64? {
        var node = SessionScope.current
        let identifier = ObjectIdentifier(core)
        while let current = node {
            if current.core == identifier { return current.id }
            node = current.parent
        }
        return nil
    }
}

/// The transaction state of a connection (libpq's `PQtransactionStatus`).
public enum PostgresTransactionStatus: Sendable, Hashable {
    /// Idle, not in a transaction block: safe to hand to someone else.
    case idle
    /// A command is in progress (or results are unread).
    case active
    /// Idle inside a transaction block.
    case inTransaction
    /// Idle inside a failed transaction block: only `ROLLBACK` helps.
    case inFailedTransaction
    /// The connection is bad.
    case unknown

    init(_ status: PGTransactionStatusType) {
        switch status {
        case PQTRANS_IDLE: self = .idle
        case PQTRANS_ACTIVE: self = .active
        case PQTRANS_INTRANS: self = .inTransaction
        case PQTRANS_INERROR: self = .inFailedTransaction
        default: self = .unknown
        }
    }
}

/// The sessions (transactions) the current task holds, innermost first.
final class SessionScope: Sendable {
    @TaskLocal static var current: SessionScope?

    let core: ObjectIdentifier
    let id: UInt64
    let parent: SessionScope?

    init(core: ObjectIdentifier, id: UInt64, parent: SessionScope?) {
        self.core = core
        self.id = id
        self.parent = parent
    }
}

/// How the statements of a pipeline relate to each other (see ``PostgresConnection/pipeline(_:mode:)``).
public struct PostgresPipelineMode: Sendable, Hashable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }

    /// Each statement runs in its own implicit transaction (a Sync after each): one failing does not affect the
    /// others, and each statement's result stands on its own. The default.
    public static let independent = PostgresPipelineMode("independent")

    /// The statements run as one implicit transaction (one Sync after the last): they take effect together or not
    /// at all, and the server answers the whole batch in one write, which makes it the faster mode. If one fails,
    /// the statements after it are skipped and the ones before it are rolled back, and every result is a failure.
    public static let transaction = PostgresPipelineMode("transaction")

    public var description: String { self.name }
}
