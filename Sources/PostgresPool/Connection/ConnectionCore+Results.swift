import CLibPQ

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
            if case .stream(_, let stream) = command.kind {
                if command.cancelRequested {
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
                if case .pipeline = command.kind, command.phase == .execute { continue }
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
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            switch command.kind {
            case .pipeline:
                if command.phase == .execute {
                    command.pipelineCurrent = PostgresResultStorage(result)
                } else {
                    PQclear(result)
                }
            case .stream(_, let stream):
                if command.phase == .execute, PQntuples(result) > 0, !stream.discarding {
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
            guard case .pipeline(let queries) = command.kind else { return }
            if command.phase == .resetSingleRowMode { return }
            if let error = command.pipelineCurrentError {
                command.pipelineResults.append(.failure(error))
            } else {
                command.pipelineResults.append(.success(PostgresRows(storage: command.pipelineCurrent)))
            }
            command.pipelineCurrent = nil
            command.pipelineCurrentError = nil
            command.pipelineIndex += 1
            if command.pipelineIndex == queries.count {
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
                if case .pipeline(let queries) = command.kind, command.pipelineIndex < queries.count {
                    error.statement = queries[command.pipelineIndex].sql
                }
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
            var statement = command.statementText
            if case .pipeline(let queries) = command.kind, command.pipelineIndex < queries.count {
                statement = queries[command.pipelineIndex].sql
            }
            let error = PostgresError.from(result: result, connection: connection, statement: statement)
            PQclear(result)
            if case .pipeline = command.kind {
                if command.pipelineCurrentError == nil { command.pipelineCurrentError = error }
            } else if command.error == nil {
                command.error = error
            }
        }
    }

    /// Called when `PQgetResult` returned NULL: the current phase's statement is done. Requires the lock.
    private func statementFinished(_ command: Command, on connection: OpaquePointer, completions: inout Completions) {
        switch command.phase {
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
            case .script(let sql):
                let upper = sql.uppercased()
                if upper.contains("DISCARD") || upper.contains("DEALLOCATE") { statementCache.removeAll() }
                complete(command, .done, completions: &completions)
            case .stream, .pipeline, .acquireSession:
                complete(command, .done, completions: &completions)
            }
        }
    }

    private func sendNextPhase(_ command: Command, on connection: OpaquePointer, completions: inout Completions) {
        if command.cancelRequested {
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
    func complete(_ command: Command, _ outcome: CommandOutcome, completions: inout Completions) {
        var outcome = outcome
        if command.cancelRequested {
            switch outcome {
            case .failure(let error) where error.sqlState == .queryCanceled: outcome = .cancelled
            case .failure, .rows, .pipeline, .done, .cancelled: break
            }
        }
        if active === command { active = nil }
        completions.append(command, outcome)
        startNextCommands(completions: &completions)
    }
}
