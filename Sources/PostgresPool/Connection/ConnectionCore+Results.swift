import CLibPQ
import Synchronization

extension ConnectionCore {
    /// Reads every result that is ready for the active command without blocking. Requires the lock.
    func drive(_ command: Command, on connection: OpaquePointer, completions: inout Completions) {
        while isConnected, active === command {
            if command.discardingCopyOut {
                var buffer: UnsafeMutablePointer<CChar>?
                let count = PQgetCopyData(connection, &buffer, 1)
                if let buffer { PQfreemem(buffer) }
                if count > 0 { continue }
                if count == 0 { return }
                command.discardingCopyOut = false
            }
            if let stream = command.stream {
                if machine.activeCancelRequested {
                    stream.discarding = true
                    stream.paused = false
                } else if stream.paused {
                    return
                }
            }
            guard PQisBusy(connection) == 0 else {
                if PQstatus(connection) == CONNECTION_BAD { brokeDuring(command, connection, &completions) }
                return
            }
            guard let result = PQgetResult(connection) else {
                if command.kind == .pipeline, command.phase == .execute {
                    if command.pipelineIsTransaction { transactionPipelineGroupEnded(command) }
                    continue
                }
                if command.phase == .prepareAndExecute {
                    // The end of one statement's results inside the pipeline; the Sync ends the command.
                    if !command.inDeallocateSegment { command.pipelinedNulls += 1 }
                    continue
                }
                statementFinished(command, on: connection, completions: &completions)
                continue
            }
            handle(result, of: command, on: connection, completions: &completions)
        }
    }

    private func brokeDuring(_ command: Command, _ connection: OpaquePointer, _ completions: inout Completions) {
        let message = PostgresError.connectionMessage(connection, fallback: "the server closed the connection")
        var error = PostgresError(code: .connectionClosed, message: message)
        if let serverError = command.error ?? command.pipelineCurrentError, serverError.sqlState != nil {
            error.sqlState = serverError.sqlState
            error.message = serverError.message
            error.underlying = serverError
        }
        connectionBroke(error, completions: &completions)
    }

    private func handle(
        _ result: OpaquePointer,
        of command: Command,
        on connection: OpaquePointer,
        completions: inout Completions
    ) {
        let status = PQresultStatus(result)
        if command.phase == .prepareAndExecute {
            handlePipelinedPrepare(result, status: status, of: command, on: connection, completions: &completions)
            return
        }
        if command.kind == .pipeline, command.pipelineIsTransaction, command.phase == .execute {
            handleTransactionPipeline(result, status: status, of: command, on: connection, completions: &completions)
            return
        }
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            switch command.kind {
            case .pipeline:
                if command.phase == .execute {
                    command.pipelineCurrent = PostgresResultStorage(result)
                } else {
                    PQclear(result)
                }
            case .stream:
                if let stream = command.stream, command.phase == .execute, PQntuples(result) > 0, !stream.discarding {
                    stream.append(PostgresResultStorage(result), completions: &completions)
                } else {
                    PQclear(result)
                }
            case .query, .script:
                if command.phase == .execute {
                    command.result = PostgresResultStorage(result)
                } else {
                    PQclear(result)
                }
            case .acquireSession:
                PQclear(result)
            }
        case PGRES_PIPELINE_SYNC:
            PQclear(result)
            guard command.kind == .pipeline else { return }
            if command.phase == .resetSingleRowMode { return }
            command.finishPipelineStatement()
            if command.pipelineIndex == command.queries.count {
                PQexitPipelineMode(connection)
                complete(command, .pipeline(command.pipelineResults), completions: &completions)
            }
        case PGRES_PIPELINE_ABORTED:
            PQclear(result)
            if command.pipelineCurrentError == nil {
                var error = PostgresError(
                    code: .server,
                    message: "the statement was skipped because an earlier statement in its pipeline segment failed"
                )
                error.statement = command.statementText
                command.pipelineCurrentError = error
            }
        case PGRES_COPY_OUT:
            PQclear(result)
            command.discardingCopyOut = true
            command.error = command.error
                ?? PostgresError(code: .unsupported, message: "COPY TO STDOUT is not supported by this driver")
        case PGRES_COPY_IN:
            PQclear(result)
            PQputCopyEnd(connection, "COPY FROM STDIN is not supported by this driver")
            if PQflush(connection) == 1 { needsWrite = true }
        case PGRES_COPY_BOTH:
            PQclear(result)
            connectionBroke(
                PostgresError(code: .unsupported, message: "replication (COPY BOTH) is not supported by this driver"),
                completions: &completions
            )
        default:
            // PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE and anything unexpected.
            let error = PostgresError.from(result: result, connection: connection, statement: command.statementText)
            PQclear(result)
            if command.kind == .pipeline {
                if command.pipelineCurrentError == nil, command.pipelineCurrent == nil,
                    let key = command.pipelinePrepared[command.pipelineIndex]
                {
                    // The first result of a segment that prepares is the prepare's: it failed, so the statement
                    // does not exist on the server. (A failed execute leaves the prepared statement cached.)
                    statementCache.remove(key)
                }
                if command.pipelineCurrentError == nil { command.pipelineCurrentError = error }
            } else if command.error == nil {
                command.error = error
            }
        }
    }

    /// Results of a transaction pipeline: its statements (each with its Parse first when the pipeline prepares it),
    /// then one Sync.
    ///
    /// Every Parse and Execute ends with a NULL from `PQgetResult` (see `transactionPipelineGroupEnded`). After an
    /// error the server skips the rest up to the Sync (`PGRES_PIPELINE_ABORTED` for each), and rolls back the
    /// implicit transaction, so at the Sync every statement's result becomes a failure: none of them took effect.
    private func handleTransactionPipeline(
        _ result: OpaquePointer,
        status: ExecStatusType,
        of command: Command,
        on connection: OpaquePointer,
        completions: inout Completions
    ) {
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            if command.pipelineReadingPrepare {
                PQclear(result)
            } else {
                command.pipelineCurrent = PostgresResultStorage(result)
            }
        case PGRES_PIPELINE_SYNC:
            PQclear(result)
            let failed = command.pipelineResults.firstIndex { if case .failure = $0 { true } else { false } }
            if let failed, case .failure(let cause) = command.pipelineResults[failed] {
                // Scenario: statement `failed` raised an error; the ones after it were skipped, and the ones before
                // it ran but were rolled back with the implicit transaction. Report every statement as failed.
                for index in command.pipelineResults.indices where index != failed {
                    if case .failure = command.pipelineResults[index] { continue }
                    var error = PostgresError(
                        code: .server,
                        message: "rolled back: statement \(failed + 1) of this transaction pipeline failed"
                            + (cause.sqlState.map { " (SQLSTATE \($0.rawValue))" } ?? "")
                    )
                    error.statement = command.queries[index].sql
                    error.underlying = cause
                    command.pipelineResults[index] = .failure(error)
                }
            }
            PQexitPipelineMode(connection)
            complete(command, .pipeline(command.pipelineResults), completions: &completions)
        case PGRES_PIPELINE_ABORTED:
            PQclear(result)
            if command.pipelineReadingPrepare, let key = command.pipelinePrepared[command.pipelineIndex] {
                // The Parse never ran: the statement does not exist on the server.
                statementCache.remove(key)
            }
            if command.pipelineCurrentError == nil {
                var error = PostgresError(
                    code: .server,
                    message: "the statement was skipped because an earlier statement of its transaction pipeline failed"
                )
                error.statement = command.statementText
                command.pipelineCurrentError = error
            }
        default:
            // PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE and anything unexpected.
            let error = PostgresError.from(result: result, connection: connection, statement: command.statementText)
            PQclear(result)
            if command.pipelineReadingPrepare, let key = command.pipelinePrepared[command.pipelineIndex] {
                statementCache.remove(key)
            }
            if command.pipelineCurrentError == nil { command.pipelineCurrentError = error }
        }
    }

    /// The NULL that ends a Parse's or a statement's results in a transaction pipeline: after a Parse the same
    /// statement's rows follow; after the rows, its result is recorded and the next statement's results follow.
    func transactionPipelineGroupEnded(_ command: Command) {
        guard command.pipelineIndex < command.queries.count else { return }
        if command.pipelineReadingPrepare {
            // The Parse's results ended; its statement's own (or, after a failed Parse, its skipped Execute) follow.
            command.pipelineReadingPrepare = false
            return
        }
        command.finishPipelineStatement()
        if command.pipelineIndex < command.queries.count {
            command.pipelineReadingPrepare = command.pipelinePrepared[command.pipelineIndex] != nil
        }
    }

    /// Results of `.prepareAndExecute`: an optional DEALLOCATE segment, then Parse and Execute up to the last Sync.
    private func handlePipelinedPrepare(
        _ result: OpaquePointer,
        status: ExecStatusType,
        of command: Command,
        on connection: OpaquePointer,
        completions: inout Completions
    ) {
        switch status {
        case PGRES_PIPELINE_SYNC:
            PQclear(result)
            command.pipelinedSyncs += 1
            guard command.pipelinedSyncs == (command.evictedName == nil ? 1 : 2) else { return }
            PQexitPipelineMode(connection)
            if !command.prepareFailed, command.pipelinedNulls >= 1, let key = command.statementKey,
                let name = command.statementName
            {
                // The statement exists on the server even when its first execution failed: keep it.
                statementCache.insert(key, name: name)
            }
            if let error = command.error {
                complete(command, .failure(error), completions: &completions)
            } else if let storage = command.result {
                complete(command, .rows(storage), completions: &completions)
            } else {
                complete(command, .done, completions: &completions)
            }
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            if !command.inDeallocateSegment, command.pipelinedNulls == 1 {
                command.result = PostgresResultStorage(result)
            } else {
                PQclear(result)
            }
        case PGRES_PIPELINE_ABORTED:
            PQclear(result)
        case PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE, PGRES_NONFATAL_ERROR:
            let error = PostgresError.from(result: result, connection: connection, statement: command.statementText)
            PQclear(result)
            // A failed DEALLOCATE (for example inside an aborted transaction) only leaks a server-side statement.
            guard !command.inDeallocateSegment else { return }
            if command.pipelinedNulls == 0 { command.prepareFailed = true }
            if command.error == nil { command.error = error }
        default:
            PQclear(result)
            if command.error == nil {
                command.error = PostgresError(
                    code: .unsupported,
                    message: "the statement returned a result this driver does not support (COPY or replication)"
                )
            }
        }
    }

    /// Called when `PQgetResult` returned NULL: the current phase's statement is done. Requires the lock.
    private func statementFinished(_ command: Command, on connection: OpaquePointer, completions: inout Completions) {
        switch command.phase {
        case .prepareAndExecute:
            // Handled by `handlePipelinedPrepare`; NULLs inside the pipeline never get here.
            return
        case .resetSingleRowMode:
            command.error = nil
            command.phase = .execute
            singleRowModeDirty = false
            sendNextPhase(command, on: connection, completions: &completions)
        case .deallocate:
            // A failed DEALLOCATE (for example inside an aborted transaction) only leaks a server-side statement.
            command.error = nil
            command.phase = .prepare
            sendNextPhase(command, on: connection, completions: &completions)
        case .prepare:
            if let error = command.error {
                complete(command, .failure(error), completions: &completions)
                return
            }
            if let key = command.statementKey, let name = command.statementName {
                statementCache.insert(key, name: name)
            }
            command.phase = .execute
            sendNextPhase(command, on: connection, completions: &completions)
        case .execute:
            if let error = command.error {
                if let key = command.statementKey {
                    if error.sqlState == .invalidSQLStatementName, !command.retriedAfterMissingStatement,
                        PQtransactionStatus(connection) == PQTRANS_IDLE
                    {
                        // Someone ran DEALLOCATE ALL or DISCARD ALL: prepare again, once.
                        statementCache.remove(key)
                        command.retriedAfterMissingStatement = true
                        command.error = nil
                        command.statementName = statementCache.makeName()
                        command.phase = .prepare
                        sendNextPhase(command, on: connection, completions: &completions)
                        return
                    }
                    if error.sqlState == .invalidSQLStatementName || error.sqlState == .featureNotSupported {
                        statementCache.remove(key)
                    }
                }
                complete(command, .failure(error), completions: &completions)
                return
            }
            switch command.kind {
            case .query:
                if let result = command.result {
                    complete(command, .rows(result), completions: &completions)
                } else {
                    complete(command, .done, completions: &completions)
                }
            case .script:
                let upper = command.script.uppercased()
                if upper.contains("DISCARD") || upper.contains("DEALLOCATE") { statementCache.removeAll() }
                complete(command, .done, completions: &completions)
            case .stream, .pipeline, .acquireSession:
                complete(command, .done, completions: &completions)
            }
        }
    }

    private func sendNextPhase(_ command: Command, on connection: OpaquePointer, completions: inout Completions) {
        if machine.activeCancelRequested {
            complete(command, .cancelled, completions: &completions)
            return
        }
        if !send(command, on: connection) {
            let error = PostgresError(
                code: PQstatus(connection) == CONNECTION_BAD ? .connectionClosed : .server,
                message: PostgresError.connectionMessage(connection, fallback: "could not send the command")
            )
            complete(command, .failure(error), completions: &completions)
        }
    }

    /// Ends the active command, frees the connection and starts the next waiting command. Requires the lock.
    ///
    /// A statement stopped by the server with SQLSTATE 57014 after this command's task asked for the cancel is the
    /// cancel's doing: it ends as `.cancelled` (a 57014 nobody here asked for is a `statement_timeout` or another
    /// session's `pg_cancel_backend`, and stays a server error).
    func complete(_ command: Command, _ outcome: CommandOutcome, completions: inout Completions) {
        var outcome = outcome
        let isActive = machine.activeID == command.id
        if isActive, machine.activeCancelRequested {
            switch outcome {
            case .failure(let error) where error.sqlState == .queryCanceled:
                outcome = .cancelled
            case .pipeline(let results)
            where results.contains(where: { if case .failure(let error) = $0 { error.sqlState == .queryCanceled } else { false } }):
                // The cancel stopped a statement of the batch: the caller asked for it, the batch is cancelled.
                outcome = .cancelled
            case .failure, .rows, .pipeline, .done, .cancelled:
                break
            }
            if case .cancelled = outcome { cancelledCommands.wrappingAdd(1, ordering: .relaxed) }
        } else if configuration.statementTimeoutInEffect {
            // 57014 that this connection did not ask for, with a statement_timeout configured: the timeout.
            switch outcome {
            case .failure(let error):
                if let timeout = error.asStatementTimeout() { outcome = .failure(timeout) }
            case .pipeline(let results):
                outcome = .pipeline(results.map { $0.mapError { $0.asStatementTimeout() ?? $0 } })
            case .rows, .done, .cancelled:
                break
            }
        }
        if case .rows = outcome { sawUnpromptedInput = false } else if case .done = outcome { sawUnpromptedInput = false }
        completions.append(command, outcome)
        if isActive { perform(machine.commandFinished(id: command.id), completions: &completions) }
    }
}

extension PostgresError {
    /// This error as ``Code/statementTimeout`` when it is the server stopping a statement (SQLSTATE 57014) and the
    /// caller knows a `statement_timeout` was in effect and that nobody on this side asked for a cancel; `nil`
    /// otherwise.
    ///
    /// The classification uses only the SQLSTATE and who asked: 57014 also reports another session's
    /// `pg_cancel_backend`, which cannot be told apart from a timeout without reading the message, whose language
    /// depends on `lc_messages`. While a timeout is in effect such a cancel counts as a timeout.
    func asStatementTimeout() -> PostgresError? {
        guard code != .statementTimeout, sqlState == .queryCanceled else { return nil }
        var translated = PostgresError(
            code: .statementTimeout,
            message: "the statement ran longer than its statement_timeout and was stopped by the server",
            underlying: self
        )
        translated.sqlState = sqlState
        translated.severity = severity
        translated.statement = statement
        return translated
    }
}
