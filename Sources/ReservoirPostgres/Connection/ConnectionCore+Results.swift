import CLibPQ
import Synchronization

extension ConnectionCore {
    typealias CommandProtocol = CommandStateMachine<PostgresResultStorage>

    /// Reads every result that is ready for the active command without blocking, feeding each to the command's
    /// protocol state machine and performing what it answers. Requires the lock.
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
            guard command.protocolState != nil else { return }
            let action: CommandProtocol.Action
            if let result = PQgetResult(connection) {
                let received = classify(result, of: command, on: connection)
                action = command.protocolState!.resultReceived(received, cache: &statementCache)
            } else {
                let idle = PQtransactionStatus(connection) == PQTRANS_IDLE
                let cancelRequested = machine.activeCancelRequested
                action = command.protocolState!.resultsEnded(
                    cache: &statementCache, transactionIsIdle: idle, cancelRequested: cancelRequested)
            }
            perform(action, of: command, on: connection, completions: &completions)
        }
    }

    /// Turns a `PGresult` into the state machine's view of it; the result is freed or owned by a storage.
    private func classify(_ result: OpaquePointer, of command: Command, on connection: OpaquePointer) -> CommandProtocol.Result {
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            let storage = PostgresResultStorage(result)
            return .rows(storage, count: storage.rowCount)
        case PGRES_SINGLE_TUPLE:
            return .singleRow(PostgresResultStorage(result))
        case PGRES_PIPELINE_SYNC:
            PQclear(result)
            return .pipelineSync
        case PGRES_PIPELINE_ABORTED:
            PQclear(result)
            return .pipelineAborted
        case PGRES_COPY_OUT:
            PQclear(result)
            return .copyOut
        case PGRES_COPY_IN:
            PQclear(result)
            return .copyIn
        case PGRES_COPY_BOTH:
            PQclear(result)
            return .copyBoth
        default:
            // PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE and anything unexpected.
            let error = PostgresError.from(result: result, connection: connection, statement: command.statementText)
            PQclear(result)
            return .error(error)
        }
    }

    /// Carries out what the command's protocol state machine answered. Requires the lock.
    private func perform(
        _ action: CommandProtocol.Action,
        of command: Command,
        on connection: OpaquePointer,
        completions: inout Completions
    ) {
        switch action {
        case .readMore:
            return
        case .deliverToStream(let rows):
            if let stream = command.stream, !stream.discarding { stream.append(rows, completions: &completions) }
        case .discardCopyData:
            command.discardingCopyOut = true
        case .endCopyIn:
            PQputCopyEnd(connection, "COPY FROM STDIN is not supported by this driver")
            if PQflush(connection) == 1 { needsWrite = true }
        case .breakConnection(let error):
            connectionBroke(error, completions: &completions)
        case .send(let step):
            send(step, of: command, on: connection, completions: &completions)
        case .complete(let outcome, let exitPipeline):
            if exitPipeline { PQexitPipelineMode(connection) }
            let result: CommandOutcome
            switch outcome {
            case .rows(let storage): result = .rows(storage)
            case .done: result = .done
            case .failure(let error): result = .failure(error)
            case .cancelled: result = .cancelled
            case .pipeline(let results): result = .pipeline(results.map { $0.map { PostgresRows(storage: $0) } })
            }
            complete(command, result, completions: &completions)
        }
    }

    private func brokeDuring(_ command: Command, _ connection: OpaquePointer, _ completions: inout Completions) {
        let message = PostgresError.connectionMessage(connection, fallback: "the server closed the connection")
        var error = PostgresError(.connectionClosed, message: message)
        if let serverError = command.protocolState?.pendingError, serverError.sqlState != nil {
            error.sqlState = serverError.sqlState
            error.message = serverError.message
            error.underlying = serverError
        }
        connectionBroke(error, completions: &completions)
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
        } else if statementTimeoutInEffect {
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
        if command.protocolState?.beginFailed == true, let scope = command.scope {
            // The transaction's BEGIN failed: the rest of its session must not run outside it.
            let error = command.protocolState?.pendingError ?? PostgresError(.server, message: "BEGIN failed")
            failedBegin = (scope, error)
        }
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
            .statementTimeout,
            message: "the statement ran longer than its statement_timeout and was stopped by the server",
            underlying: self
        )
        translated.sqlState = sqlState
        translated.severity = severity
        translated.statement = statement
        return translated
    }
}
