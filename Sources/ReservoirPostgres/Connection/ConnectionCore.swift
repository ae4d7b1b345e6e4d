import CLibPQ
import DequeModule
import Foundation
import Glibc
import Logging
import Synchronization

/// What a command sends and how its results are collected.
enum CommandKind {
    /// One statement over the extended protocol with binary results; prepared through the cache when allowed.
    case query(PostgresQuery, cacheable: Bool)
    /// SQL text over the simple protocol (several statements allowed); rows are discarded.
    case script(String)
    /// Statements sent in pipeline mode: one Sync after each, or (`transaction`) one Sync after the last.
    case pipeline([PostgresQuery], transaction: Bool)
    /// One statement in single-row mode, rows handed to a consumer with backpressure.
    case stream(PostgresQuery, StreamState)
    /// Not a statement: waits for the connection to become free and makes `scope` its exclusive owner.
    case acquireSession(UInt64)
    /// Not a statement: waits until the commands before it have ended (whatever the calling task's cancellation),
    /// without taking the connection.
    case awaitIdle
}

/// How a command ended; handed to the waiting task.
enum CommandOutcome {
    case rows(PostgresResultStorage)
    case pipeline([Result<PostgresRows, PostgresError>])
    case done
    /// `indirect`: a `PostgresError` inline would make every outcome about 250 bytes, copied through the continuation.
    indirect case failure(PostgresError)
    case cancelled
}

/// One command in flight or waiting for the connection. Every stored property is protected by the core's lock.
///
/// The command's payload is unpacked into stored constants once, so the hot paths read it without copying an enum
/// (which would retain and release every array and string in it). Its protocol state (which step, which results
/// mean what) is the pure ``CommandStateMachine`` in `protocolState`, created when the command starts.
final class Command: @unchecked Sendable {
    enum Kind {
        case query, script, pipeline, stream, acquireSession, awaitIdle
    }

    let id: UInt64
    let kind: Kind
    /// The statement of `.query` and `.stream`.
    let query: PostgresQuery
    let cacheable: Bool
    /// The SQL of `.script`.
    let script: String
    /// The statements of `.pipeline`.
    let queries: [PostgresQuery]
    /// Whether `.pipeline` runs its statements as one implicit transaction (one Sync after the last).
    let pipelineIsTransaction: Bool
    /// The consumer buffer of `.stream`.
    let stream: StreamState?
    /// The scope `.acquireSession` makes the owner.
    let sessionToAcquire: UInt64
    /// The session this command belongs to, or `nil` for a free-standing command.
    let scope: UInt64?
    var continuation: UnsafeContinuation<CommandOutcome, Never>?
    /// The protocol state, from the moment the command holds the wire.
    var protocolState: CommandStateMachine<PostgresResultStorage>?
    /// The server started `COPY TO STDOUT`: its data is read and dropped until the copy ends.
    var discardingCopyOut = false

    init(id: UInt64, kind: CommandKind, scope: UInt64?, continuation: UnsafeContinuation<CommandOutcome, Never>?) {
        self.id = id
        self.scope = scope
        self.continuation = continuation
        var query = PostgresQuery(unsafeSQL: "")
        var cacheable = false
        var script = ""
        var queries: [PostgresQuery] = []
        var transaction = false
        var stream: StreamState?
        var session: UInt64 = 0
        switch kind {
        case .query(let statement, let isCacheable):
            self.kind = .query
            query = statement
            cacheable = isCacheable
        case .script(let sql):
            self.kind = .script
            script = sql
        case .pipeline(let statements, let isTransaction):
            self.kind = .pipeline
            queries = statements
            transaction = isTransaction
        case .stream(let statement, let state):
            self.kind = .stream
            query = statement
            stream = state
        case .acquireSession(let scope):
            self.kind = .acquireSession
            session = scope
        case .awaitIdle:
            self.kind = .awaitIdle
        }
        self.query = query
        self.cacheable = cacheable
        self.script = script
        self.queries = queries
        self.pipelineIsTransaction = transaction
        self.stream = stream
        self.sessionToAcquire = session
    }

    /// The statement the results being read belong to, for error messages.
    var statementText: String? {
        if let text = protocolState?.statementText { return text }
        return kind == .script ? script : nil
    }

    /// The command as its protocol state machine sees it.
    var protocolKind: CommandStateMachine<PostgresResultStorage>.Kind? {
        switch kind {
        case .query:
            .query(StatementCache.Key(sql: query.sql, types: query.bindings.types), cacheable: cacheable)
        case .script:
            .script
        case .stream:
            .stream(StatementCache.Key(sql: query.sql, types: query.bindings.types))
        case .pipeline:
            .pipeline(
                queries.map { StatementCache.Key(sql: $0.sql, types: $0.bindings.types) },
                transaction: pipelineIsTransaction)
        case .acquireSession, .awaitIdle:
            nil
        }
    }

    /// The first encoding failure among the command's bound values.
    var encodingFailure: PostgresError? {
        switch kind {
        case .query, .stream: query.bindings.encodingFailure
        case .pipeline: queries.lazy.compactMap(\.bindings.encodingFailure).first
        case .script, .acquireSession, .awaitIdle: nil
        }
    }
}

/// The shared heart of a connection: the libpq handle, the command queue and what the threads that serve it share.
///
/// Threads: a short-lived thread of the connection's own connects (DNS, TLS and authentication may block); then the
/// connection joins a `ConnectionReactor`, whose thread waits on the sockets of many connections at once, reads
/// results and resumes waiting tasks, several answers per wake-up. A calling task sends its command
/// directly from its own thread when the connection is free (sending in non-blocking mode never blocks), so a round
/// trip costs at most one wake-up of the reactor for the answer (shared with the other answers that arrived
/// together) and one to resume the task. Everything below `lock` is protected by it; libpq is only ever called with
/// the lock held, except for `PQcancel` and the connect phase, which only the connecting thread performs while no
/// other thread can reach the handle.
final class ConnectionCore: TaskExecutor, @unchecked Sendable {
    let lock = ConnectionLock()
    let logger: Logger
    let configuration: PostgresConnection.Configuration

    // MARK: State protected by `lock`.
    var connection: OpaquePointer?
    var cancelHandle: OpaquePointer?
    var isConnected = false
    var closedError: PostgresError?
    var closeRequested = false
    var threadFinished = false
    var wakeupDescriptor: Int32
    /// Which command holds the wire, which wait, which scope owns the connection, cancellation and deadlines.
    var machine = ConnectionStateMachine<Command>()
    /// The server sent something while the connection was idle that was not a notification (usually the FATAL
    /// message of a terminated backend): the next lease proves the connection with a round trip.
    var sawUnpromptedInput = false
    var needsWrite = false
    var nextScopeID: UInt64 = 1
    var statementCache: StatementCache
    var singleRowModeDirty = false
    var listeners: [String: [UInt64: AsyncStream<PostgresNotification>.Continuation]] = [:]
    /// The `BEGIN` of the session that owns the connection, not sent yet: the session's first command carries it
    /// (see ``deferBegin(_:scope:)``).
    var deferredBegin: (scope: UInt64, sql: String)?
    /// The session whose `BEGIN` failed, with its error: every later command of that session fails with it, unsent,
    /// so that a body that caught the error never runs statements outside the transaction it asked for.
    var failedBegin: (scope: UInt64, error: PostgresError)?
    /// The steps written so far; each waits for its answers, so this counts round trips (the tests read it).
    var stepsWritten = 0
    var backendProcessID: Int32 = 0
    var connectContinuation: UnsafeContinuation<Void, any Error>?
    /// The reactor serving the connection once it is open; `nil` while it connects.
    var reactor: ConnectionReactor?
    var closeContinuations: [UnsafeContinuation<Void, Never>] = []

    // MARK: State of the reactor (see `ConnectionReactor` for who may touch which).
    var reactorDirty = false
    var reactorSlot: Int?
    var reactorEvents: UInt32 = 0
    var reactorSocket: Int32 = -1
    var reactorDeadline: ContinuousClock.Instant?

    /// Command identities; taken without the lock.
    let commandIDs = Atomic<UInt64>(1)
    /// Commands that ended as cancelled after their task asked for it (the pool counts them per lease).
    let cancelledCommands = Atomic<Int>(0)

    /// The running command, if any. Requires the lock.
    var active: Command? { machine.activeCommand }

    /// Whether the connection's options set a `statement_timeout` (read once: it is checked at every failure).
    let statementTimeoutInEffect: Bool

    init(configuration: PostgresConnection.Configuration, logger: Logger) {
        self.configuration = configuration
        self.statementTimeoutInEffect = configuration.statementTimeoutInEffect
        self.logger = logger
        self.wakeupDescriptor = clibpq_wakeup_create()
        self.statementCache = StatementCache(capacity: configuration.statementCacheCapacity)
    }

    deinit {
        if wakeupDescriptor >= 0 { Glibc.close(wakeupDescriptor) }
    }

    // MARK: The reactor thread as a task executor.

    /// Runs jobs of tasks that prefer this executor on the thread that reads the connection's answers (its
    /// reactor's), between socket events.
    ///
    /// A task pinned here (`withTaskExecutorPreference`) sends, waits and decodes without any thread hop: the
    /// thread that reads the answer also runs the task's continuation. Before the connection has joined its reactor
    /// (it is not handed out before), jobs go to the global concurrent executor.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        let reactor = self.reactor
        lock.unlock()
        if let reactor {
            reactor.enqueue(job, as: .connection(self))
        } else {
            globalConcurrentExecutor.enqueue(job)
        }
    }

    // MARK: Helpers that require the lock.

    /// Tells the thread that waits for this connection that its wait changed (a deadline, a cancel, a close, data to
    /// flush, a stream that reads again): the reactor once connected, the connecting thread before. Requires the lock.
    func wakeThread() {
        if let reactor {
            reactor.markDirty(self)
        } else if wakeupDescriptor >= 0 {
            clibpq_wakeup_signal(wakeupDescriptor)
        }
    }

    func makeCommandID() -> UInt64 {
        commandIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    func makeScopeID() -> UInt64 {
        lock.withLock {
            defer { nextScopeID &+= 1 }
            return nextScopeID
        }
    }

    // MARK: Submitting commands.

    /// Runs a command to its end and returns the outcome.
    ///
    /// - Parameters:
    ///   - kind: What to send.
    ///   - scope: The session (transaction) the command belongs to, or `nil`.
    ///   - cancellable: Whether cancelling the calling task cancels the command on the server. A command that is not
    ///     (`COMMIT`, a rollback) is awaited instead, for at most the grace period after the cancellation; past it
    ///     the connection breaks and the command ends with `expiryOutcome`.
    ///   - deadline: When the command must have ended, or `nil`.
    ///   - expiryOutcome: How the command ends when it outlives a deadline.
    func run(
        _ kind: CommandKind,
        scope: UInt64?,
        cancellable: Bool = true,
        deadline: ContinuousClock.Instant? = nil,
        expiryOutcome: ConnectionStateMachine<Command>.ExpiryOutcome = .cancelled
    ) async -> CommandOutcome {
        let id = makeCommandID()
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<CommandOutcome, Never>) in
                let command = Command(id: id, kind: kind, scope: scope, continuation: continuation)
                var completions = Completions()
                lock.lock()
                submit(
                    command, cancellable: cancellable, deadline: deadline, expiryOutcome: expiryOutcome,
                    completions: &completions)
                lock.unlock()
                completions.resumeAll()
            }
        } onCancel: {
            self.cancel(commandID: id)
        }
    }

    /// Hands a new command to the state machine and performs its answer. Requires the lock.
    func submit(
        _ command: Command,
        cancellable: Bool,
        deadline: ContinuousClock.Instant?,
        expiryOutcome: ConnectionStateMachine<Command>.ExpiryOutcome,
        completions: inout Completions
    ) {
        let taskIsCancelled = Task.isCancelled
        var deadline = deadline
        if taskIsCancelled, !cancellable {
            // Scenario: the task was cancelled before this command existed, so its cancellation handler found nothing
            // to arm. A command that is not cancelled on the server still gets the grace period as its bound.
            let bound = ContinuousClock.now.advanced(by: configuration.cancellationGracePeriod)
            deadline = deadline.map { min($0, bound) } ?? bound
        }
        let kind: ConnectionStateMachine<Command>.Kind =
            switch command.kind {
            case .acquireSession: .acquireSession(scope: command.sessionToAcquire)
            case .awaitIdle: .awaitIdle
            case .query, .script, .pipeline, .stream: .statement(cancellable: cancellable)
            }
        let action = machine.commandSubmitted(
            id: command.id,
            command: command,
            kind: kind,
            scope: command.scope,
            taskIsCancelled: taskIsCancelled,
            deadline: deadline,
            expiryOutcome: expiryOutcome
        )
        switch action {
        case .start(let command):
            if deadline != nil { wakeThread() }  // the thread's wait must honour the deadline
            start(command, completions: &completions)
        case .sessionAcquired(let command), .idle(let command):
            completions.append(command, .done)
        case .wait:
            break
        case .cancelled(let command):
            completions.append(command, .cancelled)
        case .failClosed(let command, _):
            completions.append(command, .failure(closedError ?? closedConnectionError()))
        }
    }

    /// Cancels a waiting or running command. Safe from any thread; never blocks beyond the lock.
    func cancel(commandID: UInt64) {
        var completions = Completions()
        lock.lock()
        let action = machine.cancelRequested(
            id: commandID, now: .now, gracePeriod: configuration.cancellationGracePeriod)
        switch action {
        case .cancelWaiting(let command):
            completions.append(command, .cancelled)
        case .sendCancelRequest:
            active?.stream?.paused = false
            wakeThread()
        case .armDeadline:
            wakeThread()
        case .none:
            break
        }
        lock.unlock()
        completions.resumeAll()
    }

    /// Opens the transaction of session `scope` lazily: instead of a round trip of its own, `begin` goes out with the
    /// session's first command (in the same pipeline when that is a prepared or unnamed query). Safe from any thread.
    func deferBegin(_ begin: String, scope: UInt64) {
        lock.withLock { deferredBegin = (scope, begin) }
    }

    /// Drops the deferred `BEGIN` of session `scope` if no command took it, and says whether it did so: `true` means
    /// nothing ran in the transaction, and there is nothing to commit or roll back. Safe from any thread.
    func discardUnsentBegin(scope: UInt64) -> Bool {
        lock.withLock {
            guard let deferred = deferredBegin, deferred.scope == scope else { return false }
            deferredBegin = nil
            return true
        }
    }

    /// The error of session `scope`'s `BEGIN` if it failed, clearing it (commands of the session run again after).
    /// Safe from any thread.
    func takeFailedBegin(scope: UInt64) -> PostgresError? {
        lock.withLock {
            guard let failed = failedBegin, failed.scope == scope else { return nil }
            failedBegin = nil
            return failed.error
        }
    }

    /// Ends the session `scope` owns and lets waiting commands run. Safe from any thread.
    func endSession(_ scope: UInt64) {
        var completions = Completions()
        lock.lock()
        if deferredBegin?.scope == scope { deferredBegin = nil }
        if failedBegin?.scope == scope { failedBegin = nil }
        perform(machine.sessionEnded(scope), completions: &completions)
        lock.unlock()
        completions.resumeAll()
    }

    /// Starts the commands the state machine let through. Requires the lock.
    func perform(_ actions: [ConnectionStateMachine<Command>.NextAction], completions: inout Completions) {
        for action in actions {
            switch action {
            case .start(let command):
                if machine.nextDeadline != nil { wakeThread() }  // its wait must honour the deadline
                start(command, completions: &completions)
            case .sessionAcquired(let command), .idle(let command):
                completions.append(command, .done)
            }
        }
    }

    /// Sends a command's first step, or completes it at once. Requires the lock and a free connection.
    func start(_ command: Command, completions: inout Completions) {
        switch command.kind {
        case .acquireSession, .awaitIdle:
            return  // the state machine resolves these itself
        case .pipeline where command.queries.isEmpty:
            complete(command, .pipeline([]), completions: &completions)
            return
        case .query, .script, .pipeline, .stream:
            break
        }
        guard let connection, isConnected, let kind = command.protocolKind else {
            complete(command, .failure(closedError ?? closedConnectionError()), completions: &completions)
            return
        }
        if let failure = command.encodingFailure {
            complete(command, .failure(failure), completions: &completions)
            return
        }
        if let failed = failedBegin, failed.scope == command.scope {
            complete(command, .failure(failed.error), completions: &completions)
            return
        }
        var begin: String?
        if let deferred = deferredBegin, deferred.scope == command.scope {
            begin = deferred.sql
            deferredBegin = nil
        }
        let (state, step) = CommandStateMachine<PostgresResultStorage>.start(
            kind, cache: &statementCache, singleRowModeDirty: singleRowModeDirty, begin: begin)
        command.protocolState = state
        send(step, of: command, on: connection, completions: &completions)
    }

    /// Sends one step of the command and flushes; a step libpq refuses fails the command. Requires the lock.
    func send(
        _ step: CommandStateMachine<PostgresResultStorage>.Step,
        of command: Command,
        on connection: OpaquePointer,
        completions: inout Completions
    ) {
        if write(step, of: command, on: connection) { return }
        let error = PostgresError(
            PQstatus(connection) == CONNECTION_BAD ? .connectionClosed : .server,
            message: PostgresError.connectionMessage(connection, fallback: "could not send the command")
        )
        if PQpipelineStatus(connection) != PQ_PIPELINE_OFF {
            while let result = PQgetResult(connection) { PQclear(result) }
            PQexitPipelineMode(connection)
        }
        if PQstatus(connection) == CONNECTION_BAD {
            connectionBroke(error, completions: &completions)
        } else {
            complete(command, .failure(error), completions: &completions)
        }
    }

    /// Writes one step with libpq and flushes. Requires the lock. Returns `false` if libpq refused.
    private func write(
        _ step: CommandStateMachine<PostgresResultStorage>.Step,
        of command: Command,
        on connection: OpaquePointer
    ) -> Bool {
        var sent: Int32 = 0
        switch step {
        case .resetSingleRowMode:
            sent = PQsendQuery(connection, "")
        case .deallocate(let name):
            sent = PQsendQuery(connection, "DEALLOCATE " + name)
        case .prepare(let name):
            let query = command.query
            sent = query.bindings.types.withUnsafeBufferPointer { types in
                PQsendPrepare(connection, name, query.sql, Int32(types.count), types.baseAddress)
            }
        case .prepareAndExecute(let name, let evicted):
            guard PQenterPipelineMode(connection) == 1 else { return false }
            if let evicted {
                guard PQsendQueryParams(connection, "DEALLOCATE " + evicted, 0, nil, nil, nil, nil, 0) == 1,
                    PQpipelineSync(connection) == 1
                else { return false }
            }
            let query = command.query
            let prepared = query.bindings.types.withUnsafeBufferPointer { types in
                PQsendPrepare(connection, name, query.sql, Int32(types.count), types.baseAddress)
            }
            guard prepared == 1 else { return false }
            sent = query.bindings.withUnsafeParameters { count, _, values, lengths, formats in
                PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1)
            }
            guard sent == 1, PQpipelineSync(connection) == 1 else { return false }
        case .executePrepared(let name):
            sent = command.query.bindings.withUnsafeParameters { count, _, values, lengths, formats in
                PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1)
            }
        case .executeUnnamed:
            let sql = command.query.sql
            sent = command.query.bindings.withUnsafeParameters { count, types, values, lengths, formats in
                PQsendQueryParams(connection, sql, count, types, values, lengths, formats, 1)
            }
        case .script:
            sent = PQsendQuery(connection, command.script)
        case .stream:
            let sql = command.query.sql
            sent = command.query.bindings.withUnsafeParameters { count, types, values, lengths, formats in
                PQsendQueryParams(connection, sql, count, types, values, lengths, formats, 1)
            }
            if sent == 1 { PQsetSingleRowMode(connection) }
        case .pipeline(let statements, let transaction):
            guard writePipeline(statements, transaction: transaction, of: command, on: connection) else {
                return false
            }
            sent = 1
        case .begin(let sql):
            sent = PQsendQuery(connection, sql)
        case .beginAndExecute(let begin, let statement):
            guard PQenterPipelineMode(connection) == 1,
                PQsendQueryParams(connection, begin, 0, nil, nil, nil, nil, 0) == 1
            else { return false }
            let query = command.query
            switch statement {
            case .prepared(let name):
                sent = query.bindings.withUnsafeParameters { count, _, values, lengths, formats in
                    PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1)
                }
            case .unnamed:
                sent = query.bindings.withUnsafeParameters { count, types, values, lengths, formats in
                    PQsendQueryParams(connection, query.sql, count, types, values, lengths, formats, 1)
                }
            case .prepareAndExecute:
                return false  // never planned: a statement to prepare gets BEGIN as a step of its own
            }
            guard sent == 1, PQpipelineSync(connection) == 1 else { return false }
        }
        guard sent == 1 else { return false }
        stepsWritten &+= 1
        switch step {
        case .stream: singleRowModeDirty = true
        case .resetSingleRowMode: break
        default: singleRowModeDirty = false
        }
        switch PQflush(connection) {
        case 0:
            needsWrite = false
        case 1:
            // The rest goes out from the reactor thread as the socket drains.
            needsWrite = true
            wakeThread()
        default:
            return false
        }
        return true
    }

    /// Writes a pipeline's statements as the state machine planned them. Requires the lock.
    private func writePipeline(
        _ statements: [CommandStateMachine<PostgresResultStorage>.PipelineStatement],
        transaction: Bool,
        of command: Command,
        on connection: OpaquePointer
    ) -> Bool {
        guard PQenterPipelineMode(connection) == 1 else { return false }
        // libpq 15 flushes at every PQpipelineSync: one write per statement. Corking a TCP socket for the batch sends
        // it in as few segments as possible, so the server wakes once instead of once per statement (measured in
        // bench-postgres). Unix sockets refuse the option; nothing changes there.
        let socket = PQsocket(connection)
        var cork: Int32 = 1
        let corked =
            command.queries.count > 1
            && setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &cork, socklen_t(MemoryLayout<Int32>.size)) == 0
        defer {
            if corked {
                var uncork: Int32 = 0
                _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &uncork, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        for (query, statement) in zip(command.queries, statements) {
            var sent: Int32
            switch statement {
            case .prepared(let name):
                sent = query.bindings.withUnsafeParameters { count, _, values, lengths, formats in
                    PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1)
                }
            case .prepareAndExecute(let name):
                let prepared = query.bindings.types.withUnsafeBufferPointer { types in
                    PQsendPrepare(connection, name, query.sql, Int32(types.count), types.baseAddress)
                }
                guard prepared == 1 else { return false }
                sent = query.bindings.withUnsafeParameters { count, _, values, lengths, formats in
                    PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1)
                }
            case .unnamed:
                sent = query.bindings.withUnsafeParameters { count, types, values, lengths, formats in
                    PQsendQueryParams(connection, query.sql, count, types, values, lengths, formats, 1)
                }
            }
            // Independent statements each end their own implicit transaction; a transaction pipeline has one Sync
            // after the last statement, so the server commits (or rolls back) and answers them together.
            guard sent == 1, transaction || PQpipelineSync(connection) == 1 else { return false }
        }
        return !transaction || PQpipelineSync(connection) == 1
    }

    func closedConnectionError() -> PostgresError {
        PostgresError(.connectionClosed, message: "the connection is closed")
    }

    // MARK: Broken connections.

    /// Fails everything that waits on a connection that can no longer be used. Requires the lock.
    ///
    /// - Parameters:
    ///   - error: The error the running and waiting commands get.
    ///   - reason: Why the connection ended, for the pool (``PostgresConnection/closeReason``).
    func connectionBroke(
        _ error: PostgresError,
        reason: ConnectionStateMachine<Command>.CloseReason = .lost,
        completions: inout Completions
    ) {
        guard closedError == nil else { return }
        var error = error
        if error.code != .connectionClosed {
            error = PostgresError(.connectionClosed, message: error.message, underlying: error)
        }
        closedError = error
        isConnected = false
        if reason == .lost {
            logger.debug("postgres connection lost", metadata: [LogKey.error: "\(error)"])
        }
        let action = machine.connectionClosed(reason)
        if let active = action.active { fail(active, with: error, completions: &completions) }
        for waiter in action.waiting { completions.append(waiter, .failure(error)) }
        finishListeners(completions: &completions)
    }

    /// Ends every LISTEN stream once the lock is released (finishing runs the stream's termination handler, which
    /// locks). Requires the lock.
    func finishListeners(completions: inout Completions) {
        for (_, channel) in listeners { for (_, continuation) in channel { completions.listenersToFinish.append(continuation) } }
        listeners = [:]
    }

    func fail(_ command: Command, with error: PostgresError, completions: inout Completions) {
        completions.append(command, .failure(command.protocolState?.pendingError ?? error))
    }
}

/// Continuations to resume once the lock is released.
struct Completions {
    private var first: (UnsafeContinuation<CommandOutcome, Never>, CommandOutcome)?
    private var rest: [(UnsafeContinuation<CommandOutcome, Never>, CommandOutcome)] = []
    var streamWakeups: [UnsafeContinuation<Void, Never>] = []
    var listenersToFinish: [AsyncStream<PostgresNotification>.Continuation] = []

    mutating func append(_ command: Command, _ outcome: CommandOutcome) {
        if let stream = command.stream { stream.finish(outcome, completions: &self) }
        guard let continuation = command.continuation else { return }
        command.continuation = nil
        if first == nil { first = (continuation, outcome) } else { rest.append((continuation, outcome)) }
    }

    func resumeAll() {
        if let first { first.0.resume(returning: first.1) }
        for (continuation, outcome) in rest { continuation.resume(returning: outcome) }
        for continuation in streamWakeups { continuation.resume() }
        for listener in listenersToFinish { listener.finish() }
    }
}
