/// The protocol of the running command: which step to send, what each result libpq hands back means in that step,
/// and how the command ends.
///
/// Pure, like ``ConnectionStateMachine``: the shell turns every `PGresult` into a ``Result`` value (rows wrapped in
/// the shell's `Rows` payload, errors already built as ``PostgresError``), feeds it in, and performs the returned
/// ``Action`` with libpq. The prepared-statement cache is a value passed in and out. The unit tests use strings as
/// rows and need no server.
///
/// The steps, per kind of command:
/// - **Query, cached statement** (`.executePrepared`): Bind/Execute of the cached name. A statement that disappeared
///   from the server (SQLSTATE 26000: someone ran `DEALLOCATE ALL` or `DISCARD ALL`) is prepared again under a new
///   name and run, once, when the connection is outside a transaction.
/// - **Query, new statement** (`.prepareAndExecute`): in one pipeline, [`DEALLOCATE` of the least recently used
///   statement, Sync,] Parse, Bind/Execute, Sync: one round trip. After a stream, libpq 15 would apply the stream's
///   single-row mode to the pipelined Execute, so then it takes separate steps: [`.deallocate`,] `.prepare`,
///   `.executePrepared`.
/// - **Query, not cached** (`.executeUnnamed`), **script** (`.script`), **stream** (`.stream`, single-row mode):
///   one step; the results end with libpq's NULL.
/// - **Pipeline** (`.pipeline`): every statement in pipeline mode, cached ones by name, new ones prepared in the same
///   pipeline while the cache has room (a pipeline cannot deallocate to make room), the rest unnamed; a Sync after
///   each (independent) or after the last (one transaction). After a stream, a `.resetSingleRowMode` step first.
/// - **The first command of a transaction** carries the transaction's `BEGIN` (``start(_:cache:singleRowModeDirty:begin:)``):
///   a query whose statement is cached or unnamed sends it in the same pipeline (`.beginAndExecute`: BEGIN,
///   Bind/Execute, Sync), so opening the transaction costs no round trip of its own; any other command sends `BEGIN`
///   over the simple protocol first (`.begin`) and starts its own steps once it succeeded.
struct CommandStateMachine<Rows> {
    /// What the command is, as the protocol needs to know it.
    enum Kind {
        /// One statement; `cacheable` when it may be prepared through the cache.
        case query(StatementCache.Key, cacheable: Bool)
        /// SQL text over the simple protocol.
        case script
        /// One statement in single-row mode.
        case stream(StatementCache.Key)
        /// Statements in pipeline mode; `transaction` when one Sync ends them all.
        case pipeline([StatementCache.Key], transaction: Bool)
    }

    /// A result from `PQgetResult`, classified by its status.
    enum Result {
        /// `PGRES_TUPLES_OK`, `PGRES_COMMAND_OK` or `PGRES_EMPTY_QUERY`, with its number of rows.
        case rows(Rows, count: Int)
        /// `PGRES_SINGLE_TUPLE`: one row of a stream.
        case singleRow(Rows)
        /// `PGRES_PIPELINE_SYNC`.
        case pipelineSync
        /// `PGRES_PIPELINE_ABORTED`: skipped because an earlier statement of the segment failed.
        case pipelineAborted
        /// `PGRES_FATAL_ERROR`, `PGRES_NONFATAL_ERROR`, `PGRES_BAD_RESPONSE` or an unknown status. (Errors are
        /// `indirect` here and below: a `PostgresError` is about 250 bytes, and every value of an enum that held one
        /// inline would be that large, copied whole on every result of every statement.)
        indirect case error(PostgresError)
        /// `PGRES_COPY_OUT`.
        case copyOut
        /// `PGRES_COPY_IN`.
        case copyIn
        /// `PGRES_COPY_BOTH`.
        case copyBoth
    }

    /// One statement of a pipeline as it is sent.
    enum PipelineStatement: Equatable {
        /// Bind/Execute of a cached statement.
        case prepared(name: String)
        /// Parse under `name`, then Bind/Execute of it (the statement is new and the cache has room).
        case prepareAndExecute(name: String)
        /// Parse/Bind/Execute of the unnamed statement.
        case unnamed
    }

    /// What the shell sends.
    enum Step: Equatable {
        /// An empty query, to clear libpq 15's stale single-row flag before a pipeline.
        case resetSingleRowMode
        /// `DEALLOCATE name` over the simple protocol.
        case deallocate(name: String)
        /// Parse of the statement under `name`.
        case prepare(name: String)
        /// In pipeline mode: [`DEALLOCATE evicted`, Sync,] Parse under `name`, Bind/Execute, Sync.
        case prepareAndExecute(name: String, evicted: String?)
        /// Bind/Execute of the prepared statement `name`, binary results.
        case executePrepared(name: String)
        /// Parse/Bind/Execute of the unnamed statement, binary results.
        case executeUnnamed
        /// The script's text.
        case script
        /// The statement, unnamed, then single-row mode.
        case stream
        /// The statements in pipeline mode, with a Sync after each or (`transaction`) after the last.
        case pipeline([PipelineStatement], transaction: Bool)
        /// `BEGIN …` over the simple protocol, before the command's own first step.
        case begin(String)
        /// In pipeline mode: `BEGIN …` (unnamed), Bind/Execute of the statement (`.prepared` or `.unnamed`), one
        /// Sync. The statement runs inside the transaction the `BEGIN` opens; when `BEGIN` fails it is skipped.
        case beginAndExecute(String, PipelineStatement)
    }

    /// How the command ended.
    enum Outcome {
        case rows(Rows)
        case done
        indirect case failure(PostgresError)
        /// One entry per pipeline statement: its rows (`nil` when it returned no result) or its error.
        case pipeline([Swift.Result<Rows?, PostgresError>])
        case cancelled
    }

    /// Indicates what the shell does next.
    enum Action {
        /// Indicates that the result was taken (or dropped): read the next one.
        case readMore
        /// Indicates that a stream row arrived: hand it to the consumer (or drop it when the consumer is gone).
        case deliverToStream(Rows)
        /// Indicates that the server started `COPY TO STDOUT`: read and drop its data until the copy ends.
        case discardCopyData
        /// Indicates that the server waits for `COPY FROM STDIN` data: end the copy with an error message.
        case endCopyIn
        /// Indicates that the connection cannot go on (replication protocol): break it with this error.
        indirect case breakConnection(PostgresError)
        /// Indicates that the current step is done: send the next one.
        case send(Step)
        /// Indicates that the command ended; `exitPipeline` when libpq must leave pipeline mode first.
        case complete(Outcome, exitPipeline: Bool)
    }

    /// The state of a new statement prepared and run in one pipeline.
    struct PipelinedPrepare {
        var evicted: String?
        var syncs = 0
        /// End-of-statement NULLs seen after the DEALLOCATE segment: 1 after the Parse, 2 after the Execute.
        var nulls = 0
        var prepareFailed = false
        /// Whether results still belong to the DEALLOCATE segment (before its Sync).
        var inDeallocateSegment: Bool { evicted != nil && syncs == 0 }
    }

    /// The state of a pipeline.
    struct PipelineState {
        var index = 0
        var results: [Swift.Result<Rows?, PostgresError>] = []
        var current: Rows?
        /// Boxed, as the machine's first error is.
        var currentError: PostgresError? {
            get { currentErrorBox?.error }
            set { currentErrorBox = newValue.map(ErrorBox.init) }
        }
        private var currentErrorBox: ErrorBox?
        /// The statements this pipeline prepares, by index, and which ran under a cached name.
        var statements: [PipelineStatement] = []
        /// In a transaction pipeline: whether the results being read are the current statement's Parse.
        var readingPrepare = false
    }

    /// The step the command is in.
    ///
    /// Query: `.deallocate` → `.prepare` → `.execute`, or `.pipelinedPrepare`, or `.execute` alone. Pipeline:
    /// [`.resetSingleRowMode` →] `.pipeline`. Script and stream: `.execute`. The first command of a transaction:
    /// `.pipelinedBegin` alone, or `.begin` before its own phases.
    enum Phase {
        /// The transaction's `BEGIN` runs; the command's own first step is planned when it succeeded.
        case begin
        /// `BEGIN` and the statement in one pipeline; `nulls` counts the end-of-statement NULLs seen (1 after the
        /// `BEGIN`, 2 after the statement), and the Sync ends the command.
        case pipelinedBegin(nulls: Int)
        case resetSingleRowMode
        case deallocate
        case prepare
        case pipelinedPrepare(PipelinedPrepare)
        case execute
        case pipeline(PipelineState)
    }

    let kind: Kind
    private(set) var phase: Phase
    /// The statement's name when it runs prepared.
    private(set) var statementName: String?
    /// The `BEGIN` this command opens its transaction with, if it is the transaction's first command.
    private(set) var begin: String?
    /// Whether that `BEGIN` failed (the command fails with its error, and the transaction did not open).
    private(set) var beginFailed = false
    /// Whether the statement was prepared again after it disappeared from the server (at most once).
    private var retriedAfterMissingStatement = false
    private var result: Rows?
    /// The first error of the command, boxed: inline, it would make the state (copied when a command starts) about
    /// 250 bytes larger.
    private var error: PostgresError? {
        get { errorBox?.error }
        set { errorBox = newValue.map(ErrorBox.init) }
    }
    private var errorBox: ErrorBox?

    /// A `PostgresError` behind a reference.
    final class ErrorBox {
        let error: PostgresError
        init(_ error: PostgresError) { self.error = error }
    }

    /// Starts a command and says what to send first.
    ///
    /// - Parameters:
    ///   - kind: The command.
    ///   - cache: The connection's prepared-statement cache.
    ///   - singleRowModeDirty: Whether the previous command ran in single-row mode (libpq 15 would leak it into a
    ///     pipeline).
    ///   - begin: The transaction's `BEGIN` when this is the first command inside a transaction that has not been
    ///     opened on the server yet (``PostgresConnection/withTransaction(isolationLevel:readOnly:isolation:_:)``
    ///     defers it to here).
    /// - Returns: The machine and its first step.
    static func start(
        _ kind: Kind,
        cache: inout StatementCache,
        singleRowModeDirty: Bool,
        begin: String? = nil
    ) -> (Self, Step) {
        var machine = Self(kind: kind, phase: .execute)
        guard let begin else {
            let step = machine.firstStep(cache: &cache, singleRowModeDirty: singleRowModeDirty)
            return (machine, step)
        }
        machine.begin = begin
        // After a stream, libpq 15 would apply the stream's single-row mode to a pipelined Execute.
        if !singleRowModeDirty, case .query(let key, let cacheable) = kind {
            if !cacheable || !cache.isEnabled {
                machine.phase = .pipelinedBegin(nulls: 0)
                return (machine, .beginAndExecute(begin, .unnamed))
            }
            if let name = cache.hit(key) {
                machine.statementName = name
                machine.phase = .pipelinedBegin(nulls: 0)
                return (machine, .beginAndExecute(begin, .prepared(name: name)))
            }
        }
        // Anything else (a statement to prepare, a script, a stream, a pipeline) is planned once BEGIN succeeded, so
        // that nothing is evicted from the cache for a command that never runs.
        machine.phase = .begin
        return (machine, .begin(begin))
    }

    /// Plans the command's own first step (after its `BEGIN`, if it had one to send).
    private mutating func firstStep(cache: inout StatementCache, singleRowModeDirty: Bool) -> Step {
        phase = .execute
        switch kind {
        case .query(let key, let cacheable):
            guard cacheable, cache.isEnabled else { return .executeUnnamed }
            switch cache.lookup(key) {
            case .hit(let name):
                statementName = name
                return .executePrepared(name: name)
            case .miss(let name, let evicted):
                statementName = name
                if singleRowModeDirty {
                    if let evicted {
                        phase = .deallocate
                        return .deallocate(name: evicted)
                    }
                    phase = .prepare
                    return .prepare(name: name)
                }
                phase = .pipelinedPrepare(PipelinedPrepare(evicted: evicted))
                return .prepareAndExecute(name: name, evicted: evicted)
            }
        case .script:
            return .script
        case .stream:
            return .stream
        case .pipeline:
            if singleRowModeDirty {
                phase = .resetSingleRowMode
                return .resetSingleRowMode
            }
            return startPipeline(cache: &cache)
        }
    }

    private init(kind: Kind, phase: Phase) {
        self.kind = kind
        self.phase = phase
    }

    /// The text of the statement the results being read belong to, for error messages.
    var statementText: String? {
        switch phase {
        case .begin, .pipelinedBegin(nulls: 0): return begin
        default: break
        }
        return switch kind {
        case .query(let key, _), .stream(let key): key.sql
        case .script: nil
        case .pipeline(let keys, _):
            if case .pipeline(let state) = phase, state.index < keys.count { keys[state.index].sql } else { nil }
        }
    }

    /// The server error recorded so far for the current statement, if any (a connection that breaks next reports it
    /// as the cause: a terminated backend sends its error before closing).
    var pendingError: PostgresError? {
        if let error { return error }
        if case .pipeline(let state) = phase { return state.currentError }
        return nil
    }

    // MARK: Events.

    /// `PQgetResult` returned a result.
    mutating func resultReceived(_ received: Result, cache: inout StatementCache) -> Action {
        switch received {
        case .copyOut:
            if error == nil { error = Self.unsupported("COPY TO STDOUT is not supported by this driver") }
            return .discardCopyData
        case .copyIn:
            return .endCopyIn
        case .copyBoth:
            return .breakConnection(Self.unsupported("replication (COPY BOTH) is not supported by this driver"))
        case .rows, .singleRow, .pipelineSync, .pipelineAborted, .error:
            break
        }
        switch phase {
        case .begin:
            if case .error(let failure) = received, error == nil {
                error = failure
                beginFailed = true
            }
            return .readMore
        case .pipelinedBegin(let nulls):
            return pipelinedBeginResult(received, nulls: nulls, cache: &cache)
        case .resetSingleRowMode, .deallocate:
            // Results of a housekeeping step are dropped; a failed DEALLOCATE (for example inside an aborted
            // transaction) only leaks a statement on the server.
            return .readMore
        case .prepare:
            if case .error(let failure) = received, error == nil { error = failure }
            return .readMore
        case .execute:
            return executeResult(received)
        case .pipelinedPrepare(var state):
            defer { phase = .pipelinedPrepare(state) }
            return pipelinedPrepareResult(received, state: &state, cache: &cache)
        case .pipeline(var state):
            phase = .execute  // the state is moved out while it changes, then put back
            defer { phase = .pipeline(state) }
            if case .pipeline(_, transaction: true) = kind {
                return transactionPipelineResult(received, state: &state, cache: &cache)
            }
            return pipelineResult(received, state: &state, cache: &cache)
        }
    }

    /// `PQgetResult` returned NULL: the results of the current statement ended.
    ///
    /// - Parameters:
    ///   - cache: The connection's prepared-statement cache.
    ///   - transactionIsIdle: Whether the connection is outside a transaction block (a statement that disappeared
    ///     is prepared again only then: inside a transaction the failure already aborted it).
    ///   - cancelRequested: Whether the task asked for a cancel (no further step is sent then).
    mutating func resultsEnded(
        cache: inout StatementCache,
        transactionIsIdle: Bool,
        cancelRequested: Bool
    ) -> Action {
        switch phase {
        case .begin:
            // The transaction is open on the server unless BEGIN failed; the caller rolls back either way.
            if let error { return .complete(.failure(error), exitPipeline: false) }
            if cancelRequested { return .complete(.cancelled, exitPipeline: false) }
            return .send(firstStep(cache: &cache, singleRowModeDirty: false))
        case .pipelinedBegin(let nulls):
            phase = .pipelinedBegin(nulls: nulls + 1)
            return .readMore
        case .resetSingleRowMode:
            if cancelRequested { return .complete(.cancelled, exitPipeline: false) }
            return .send(startPipeline(cache: &cache))
        case .deallocate:
            if cancelRequested { return .complete(.cancelled, exitPipeline: false) }
            phase = .prepare
            return .send(.prepare(name: statementName ?? ""))
        case .prepare:
            if let error { return .complete(.failure(error), exitPipeline: false) }
            if case .query(let key, _) = kind, let statementName { cache.insert(key, name: statementName) }
            if cancelRequested { return .complete(.cancelled, exitPipeline: false) }
            phase = .execute
            return .send(.executePrepared(name: statementName ?? ""))
        case .execute:
            return executeEnded(cache: &cache, transactionIsIdle: transactionIsIdle, cancelRequested: cancelRequested)
        case .pipelinedPrepare(var state):
            // The end of the Parse's or the Execute's results inside the pipeline; the last Sync ends the command.
            if !state.inDeallocateSegment { state.nulls += 1 }
            phase = .pipelinedPrepare(state)
            return .readMore
        case .pipeline(var state):
            if case .pipeline(let keys, transaction: true) = kind {
                // Every Parse and Execute ends with a NULL: after a Parse its statement's rows follow; after the rows
                // the statement's result is recorded and the next statement's results follow.
                if state.index < keys.count {
                    if state.readingPrepare {
                        state.readingPrepare = false
                    } else {
                        Self.finishStatement(&state)
                        state.readingPrepare = state.index < keys.count && Self.prepares(state, at: state.index)
                    }
                }
                phase = .pipeline(state)
            }
            return .readMore
        }
    }

    // MARK: Steps.

    /// Plans the pipeline against the cache: cached statements by name, new ones prepared while there is room.
    private mutating func startPipeline(cache: inout StatementCache) -> Step {
        guard case .pipeline(let keys, let transaction) = kind else { return .script }
        var state = PipelineState()
        state.statements.reserveCapacity(keys.count)
        for key in keys {
            guard cache.isEnabled else {
                state.statements.append(.unnamed)
                continue
            }
            if let name = cache.hit(key) {
                state.statements.append(.prepared(name: name))
            } else if cache.hasRoom {
                let name = cache.makeName()
                cache.insert(key, name: name)
                state.statements.append(.prepareAndExecute(name: name))
            } else {
                state.statements.append(.unnamed)
            }
        }
        if transaction { state.readingPrepare = Self.prepares(state, at: 0) }
        phase = .pipeline(state)
        return .pipeline(state.statements, transaction: transaction)
    }

    private static func prepares(_ state: PipelineState, at index: Int) -> Bool {
        guard index < state.statements.count, case .prepareAndExecute = state.statements[index] else { return false }
        return true
    }

    // MARK: Single statements, scripts and streams.

    private mutating func executeResult(_ received: Result) -> Action {
        switch received {
        case .rows(let rows, let count):
            if case .stream = kind {
                return count > 0 ? .deliverToStream(rows) : .readMore
            }
            result = rows
        case .singleRow(let rows):
            if case .stream = kind { return .deliverToStream(rows) }
            result = rows
        case .error(let failure):
            if error == nil { error = failure }
        case .pipelineSync, .pipelineAborted, .copyOut, .copyIn, .copyBoth:
            break
        }
        return .readMore
    }

    private mutating func executeEnded(
        cache: inout StatementCache,
        transactionIsIdle: Bool,
        cancelRequested: Bool
    ) -> Action {
        guard let error else {
            if let result { return .complete(.rows(result), exitPipeline: false) }
            return .complete(.done, exitPipeline: false)
        }
        if case .query(let key, _) = kind, statementName != nil {
            if error.sqlState == .invalidSQLStatementName, !retriedAfterMissingStatement, transactionIsIdle,
                !cancelRequested
            {
                // Someone ran DEALLOCATE ALL or DISCARD ALL: prepare again under a new name, once.
                cache.remove(key)
                retriedAfterMissingStatement = true
                self.error = nil
                self.result = nil
                let name = cache.makeName()
                statementName = name
                phase = .prepare
                return .send(.prepare(name: name))
            }
            if error.sqlState == .invalidSQLStatementName || error.sqlState == .featureNotSupported {
                // Gone from the server, or its plan no longer fits (cached plan must not change result type).
                cache.remove(key)
            }
        }
        return .complete(.failure(error), exitPipeline: false)
    }

    // MARK: BEGIN and the statement in one pipeline.

    /// Results of `.beginAndExecute`: BEGIN's, NULL, the statement's (or `PGRES_PIPELINE_ABORTED` when BEGIN failed),
    /// NULL, Sync. The first error is the command's.
    private mutating func pipelinedBeginResult(
        _ received: Result,
        nulls: Int,
        cache: inout StatementCache
    ) -> Action {
        switch received {
        case .rows(let rows, _), .singleRow(let rows):
            if nulls == 1 { result = rows }
        case .error(let failure):
            if error == nil {
                error = failure
                beginFailed = nulls == 0
            }
        case .pipelineSync:
            guard let error else {
                if let result { return .complete(.rows(result), exitPipeline: true) }
                return .complete(.done, exitPipeline: true)
            }
            if case .query(let key, _) = kind, statementName != nil,
                error.sqlState == .invalidSQLStatementName || error.sqlState == .featureNotSupported
            {
                // Gone from the server, or its plan no longer fits. Inside the transaction the failure aborted it, so
                // it is not prepared again here; the next use prepares it.
                cache.remove(key)
            }
            return .complete(.failure(error), exitPipeline: true)
        case .pipelineAborted, .copyOut, .copyIn, .copyBoth:
            break
        }
        return .readMore
    }

    // MARK: A new statement prepared and run in one pipeline.

    private mutating func pipelinedPrepareResult(
        _ received: Result,
        state: inout PipelinedPrepare,
        cache: inout StatementCache
    ) -> Action {
        switch received {
        case .pipelineSync:
            state.syncs += 1
            guard state.syncs == (state.evicted == nil ? 1 : 2) else { return .readMore }
            if !state.prepareFailed, state.nulls >= 1, case .query(let key, _) = kind, let statementName {
                // The statement exists on the server even when its first execution failed: keep it.
                cache.insert(key, name: statementName)
            }
            if let error { return .complete(.failure(error), exitPipeline: true) }
            if let result { return .complete(.rows(result), exitPipeline: true) }
            return .complete(.done, exitPipeline: true)
        case .rows(let rows, _), .singleRow(let rows):
            if !state.inDeallocateSegment, state.nulls == 1 { result = rows }
            return .readMore
        case .pipelineAborted:
            return .readMore
        case .error(let failure):
            // A failed DEALLOCATE (for example inside an aborted transaction) only leaks a server-side statement.
            guard !state.inDeallocateSegment else { return .readMore }
            if state.nulls == 0 { state.prepareFailed = true }
            if error == nil { error = failure }
            return .readMore
        case .copyOut, .copyIn, .copyBoth:
            return .readMore  // handled before the phase
        }
    }

    // MARK: Pipelines.

    /// Results of independent statements: each segment is [Parse, NULL,] Execute, NULL, Sync.
    private func pipelineResult(
        _ received: Result,
        state: inout PipelineState,
        cache: inout StatementCache
    ) -> Action {
        guard case .pipeline(let keys, _) = kind else { return .readMore }
        switch received {
        case .rows(let rows, _), .singleRow(let rows):
            state.current = rows
        case .pipelineSync:
            Self.finishStatement(&state)
            if state.index == keys.count { return .complete(.pipeline(state.results), exitPipeline: true) }
        case .pipelineAborted:
            if state.currentError == nil {
                state.currentError = skipped(
                    "the statement was skipped because an earlier statement in its pipeline segment failed", state)
            }
        case .error(let failure):
            if state.index < keys.count {
                if state.currentError == nil, state.current == nil, Self.prepares(state, at: state.index) {
                    // The first result of a segment that prepares is the Parse's: it failed, so the statement does
                    // not exist on the server. (A failed Execute leaves the prepared statement in place.)
                    cache.remove(keys[state.index])
                } else if failure.sqlState == .invalidSQLStatementName {
                    // A cached statement that disappeared from the server: prepare it again next time.
                    cache.remove(keys[state.index])
                }
            }
            if state.currentError == nil { state.currentError = failure }
        case .copyOut, .copyIn, .copyBoth:
            break
        }
        return .readMore
    }

    /// Results of a transaction pipeline: its statements (each with its Parse first when the pipeline prepares it),
    /// then one Sync.
    ///
    /// After an error the server skips the rest up to the Sync (`PGRES_PIPELINE_ABORTED` for each) and rolls back the
    /// implicit transaction, so at the Sync every statement's result becomes a failure: none of them took effect.
    private func transactionPipelineResult(
        _ received: Result,
        state: inout PipelineState,
        cache: inout StatementCache
    ) -> Action {
        guard case .pipeline(let keys, _) = kind else { return .readMore }
        switch received {
        case .rows(let rows, _), .singleRow(let rows):
            if !state.readingPrepare { state.current = rows }
        case .pipelineSync:
            return .complete(.pipeline(Self.rolledBack(state.results, keys: keys)), exitPipeline: true)
        case .pipelineAborted:
            if state.readingPrepare, state.index < keys.count {
                cache.remove(keys[state.index])  // the Parse never ran
            }
            if state.currentError == nil {
                state.currentError = skipped(
                    "the statement was skipped because an earlier statement of its transaction pipeline failed", state)
            }
        case .error(let failure):
            if state.index < keys.count,
                state.readingPrepare || failure.sqlState == .invalidSQLStatementName
            {
                cache.remove(keys[state.index])
            }
            if state.currentError == nil { state.currentError = failure }
        case .copyOut, .copyIn, .copyBoth:
            break
        }
        return .readMore
    }

    /// Scenario: statement `failed` raised an error; the ones after it were skipped, and the ones before it ran but
    /// were rolled back with the implicit transaction. Every statement is reported as failed.
    private static func rolledBack(
        _ results: [Swift.Result<Rows?, PostgresError>],
        keys: [StatementCache.Key]
    ) -> [Swift.Result<Rows?, PostgresError>] {
        guard let failed = results.firstIndex(where: { if case .failure = $0 { true } else { false } }),
            case .failure(let cause) = results[failed]
        else { return results }
        var results = results
        for index in results.indices where index != failed {
            if case .failure = results[index] { continue }
            var error = PostgresError(
                .server,
                message: "rolled back: statement \(failed + 1) of this transaction pipeline failed"
                    + (cause.sqlState.map { " (SQLSTATE \($0.rawValue))" } ?? "")
            )
            error.statement = keys[index].sql
            error.underlying = cause
            results[index] = .failure(error)
        }
        return results
    }

    /// Records the current pipeline statement's rows or error, and moves to the next statement.
    private static func finishStatement(_ state: inout PipelineState) {
        if let error = state.currentError {
            state.results.append(.failure(error))
        } else {
            state.results.append(.success(state.current))
        }
        state.current = nil
        state.currentError = nil
        state.index += 1
    }

    private func skipped(_ message: String, _ state: PipelineState) -> PostgresError {
        var error = PostgresError(.server, message: message)
        if case .pipeline(let keys, _) = kind, state.index < keys.count { error.statement = keys[state.index].sql }
        return error
    }

    private static func unsupported(_ message: String) -> PostgresError {
        PostgresError(.unsupported, message: message)
    }
}
