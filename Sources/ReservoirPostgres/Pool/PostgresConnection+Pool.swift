import CLibPQ

extension PostgresConnection {
    /// What a lease can tell without a round trip or a system call, in one locked read of what the connection's
    /// thread keeps.
    enum LeaseCheck {
        /// Closed or broken: replace it.
        case closed
        /// Open, but the server sent something unprompted while it sat idle (usually a terminating backend's
        /// message), or a command is still draining: prove it with a round trip.
        case suspect
        /// Open and quiet.
        case ready
    }

    /// The connection's state for a lease, from one locked read.
    func leaseCheck() -> LeaseCheck {
        core.lock.withLock {
            guard core.isConnected, let connection = core.connection, PQstatus(connection) == CONNECTION_OK else {
                return .closed
            }
            if core.sawUnpromptedInput || core.machine.isBusy { return .suspect }
            return .ready
        }
    }

    /// Why the connection closed (or `nil` while open) and its transaction state, from one locked read.
    func releaseCheck() -> (ConnectionStateMachine<Command>.CloseReason?, PostgresTransactionStatus) {
        core.lock.withLock {
            let reason: ConnectionStateMachine<Command>.CloseReason?
            if case .closed(let closed) = core.machine.state { reason = closed } else { reason = nil }
            guard core.isConnected, let connection = core.connection else { return (reason, .unknown) }
            return (reason, PostgresTransactionStatus(PQtransactionStatus(connection)))
        }
    }

    /// Whether the running command was cancelled and is still reading its last results: a stream left part-way
    /// (the consumer broke out of its loop), whose cancel request is out. The connection ends it within the grace
    /// period, or breaks.
    var isDrainingCancelledCommand: Bool {
        core.lock.withLock { core.machine.activeCancelRequested }
    }

    /// Waits until the commands submitted before this call have ended. The calling task's cancellation does not end
    /// the wait; the running command's deadline bounds it (see ``isDrainingCancelledCommand``).
    func awaitIdle() async {
        _ = await core.run(.awaitIdle, scope: nil)
    }

    /// Proves the connection with a round trip (`SELECT 1`), bounded by the grace period: a backend that does not
    /// answer in time (frozen, or behind a network that stopped answering) breaks the connection instead of holding
    /// the acquiring caller. Cancelling the caller cancels it like any statement.
    ///
    /// - Throws: ``PostgresError`` when the round trip fails or the connection closes; `CancellationError`.
    func validateWithRoundTrip() async throws {
        let deadline = ContinuousClock.now.advanced(by: core.configuration.cancellationGracePeriod)
        switch await core.run(.script("SELECT 1"), scope: nil, deadline: deadline) {
        case .done, .rows, .pipeline: return
        case .failure(let error): throw error
        case .cancelled:
            if isClosed {
                throw PostgresError(
                    .connectionClosed,
                    message: "the validation round trip did not end within the grace period; the connection was closed")
            }
            throw CancellationError()
        }
    }

    /// Runs clean-up SQL that must reach the server even when the calling task is cancelled (a rollback, a session
    /// reset): it is not cancelled on the server, and it is bounded by `deadline` (by default the grace period from
    /// now); past it the connection is closed.
    ///
    /// - Throws: ``PostgresError`` when the statement fails or the connection closes.
    func runCleanup(_ sql: String, deadline: ContinuousClock.Instant? = nil) async throws {
        let bound = deadline ?? ContinuousClock.now.advanced(by: core.configuration.cancellationGracePeriod)
        switch await core.run(.script(sql), scope: currentScope(), cancellable: false, deadline: bound) {
        case .done, .rows, .pipeline: return
        case .failure(let error): throw error
        case .cancelled: throw CancellationError()
        }
    }

    /// Resets session state but keeps prepared statements (deadpool-postgres's "clean" recycling).
    ///
    /// - Throws: ``PostgresError`` when a statement fails; the connection should then be closed.
    func cleanSession() async throws {
        try await runCleanup(
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
                + "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
        )
    }

    /// Runs `DISCARD ALL` and empties the statement cache, whose statements the server has just deallocated.
    ///
    /// - Throws: ``PostgresError`` when the statement fails; the connection should then be closed.
    func resetSession() async throws {
        try await runCleanup("DISCARD ALL")
        core.lock.withLock {
            core.statementCache = StatementCache(capacity: core.statementCache.capacity)
        }
    }
}
