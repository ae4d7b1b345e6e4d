import CoreMetrics
import Logging
import Reservoir
import Synchronization

/// The generic pool, as the hooks reach it to invalidate every connection: set once the pool exists, held weakly (the
/// pool holds the hooks).
final class PoolLink: Sendable {
    private struct Reference {
        weak var pool: ResourcePool<PostgresConnection, ContinuousClock>?
    }

    private let reference = Mutex(Reference())

    func connect(_ pool: ResourcePool<PostgresConnection, ContinuousClock>) {
        reference.withLock { $0.pool = pool }
    }

    func invalidateAll() {
        reference.withLock { $0.pool }?.invalidateAll()
    }
}

/// The PostgreSQL-aware hooks the pool runs: validation before a lease, the dirty-return check after one.
struct PostgresPoolHooks: Sendable {
    let validationIdleThreshold: Duration?
    let sessionReset: PostgresPool.SessionReset
    let gracePeriod: Duration
    /// Whether the connection string asks for a server that accepts writes (`target_session_attrs=read-write` or
    /// `primary`): a connection that finds its server read-only then invalidates the whole pool.
    let requiresWritableServer: Bool
    let poolLink: PoolLink
    let instruments: PostgresPoolInstruments
    let logger: Logger

    /// Runs before every lease, in the acquiring task. Returns `false` to have the connection replaced.
    ///
    /// The check without a round trip is one locked read of what the connection's reactor thread keeps (open, and nothing
    /// unprompted from the server while idle); the round trip runs after idle time, after a connection error, or
    /// when the server sent something unprompted.
    func validate(_ connection: PostgresConnection, context: ResourceValidationContext) async throws -> Bool {
        AcquireSpan.observation?.record(useCount: context.useCount)
        let suspect: Bool
        switch connection.leaseCheck() {
        case .closed:
            instruments.validationFailed()
            return false
        case .suspect:
            // The server spoke while nobody asked: usually a termination (its FATAL message arrives before the
            // end of the stream, so libpq may still report the connection as fine). Prove it with a round trip.
            suspect = true
        case .ready:
            suspect = false
        }
        let idleTooLong = validationIdleThreshold.map { context.idleDuration >= $0 } ?? false
        guard suspect || context.validationRequested || idleTooLong else { return writable(connection) }
        // A cancelled acquirer gets the connection unchecked: its first statement fails with CancellationError
        // and the connection comes straight back, still idle. Validating here would fail and close a healthy one.
        if Task.isCancelled { return true }
        instruments.validationRoundTrip()
        do {
            try await connection.validateWithRoundTrip()
            // The round trip also read any parameter the server reported meanwhile (a promotion, a reload).
            return writable(connection)
        } catch is CancellationError {
            // Cancelled during the round trip: the driver waited until the connection was idle again.
            return !connection.isClosed && connection.transactionStatus == .idle
        } catch {
            instruments.validationFailed()
            logger.debug("connection failed validation; replacing it", metadata: [LogKey.error: "\(error)"])
            return false
        }
    }

    /// `true` unless the pool needs a writable server and this connection's server said it is read-only (a
    /// standby, or a primary fenced with `default_transaction_read_only`): then every connection is invalidated, so
    /// that new ones find the current primary through the connection string's hosts.
    private func writable(_ connection: PostgresConnection) -> Bool {
        guard requiresWritableServer, connection.isReadOnlyServer else { return true }
        readOnlyServerFound(connection)
        return false
    }

    /// Counts, logs and acts on a connection whose server no longer accepts writes.
    private func readOnlyServerFound(_ connection: PostgresConnection) {
        instruments.readOnlyServerFound()
        logger.warning(
            """
            the server of a connection is read-only (a standby, or a fenced primary) but the pool needs a writable \
            one (target_session_attrs); reconnecting every connection
            """,
            metadata: [LogKey.backendPID: "\(connection.backendProcessID)"]
        )
        poolLink.invalidateAll()
    }

    /// Runs when a lease ends, in the releasing task: decides whether the connection may serve the next caller.
    func released(_ connection: PostgresConnection, context: ResourceReleaseContext) async -> ResourceReleaseDecision {
        if context.markedBroken { return .discard }
        if requiresWritableServer, let error = context.error as? PostgresError,
            error.sqlState == .readOnlySQLTransaction, connection.isReadOnlyServer
        {
            // A write failed because the server is read-only, and it says so of itself (not a read-only transaction
            // the caller asked for): the primary moved.
            readOnlyServerFound(connection)
            return .discard
        }
        var (closeReason, status) = connection.releaseCheck()
        if closeReason == nil, status == .active, connection.isDrainingCancelledCommand {
            // A stream left part-way (the documented `break` out of its loop): its cancel is out and the connection
            // reads what is left, within the grace period or it breaks. Wait for that instead of closing a connection
            // the caller used as documented.
            await connection.awaitIdle()
            (closeReason, status) = connection.releaseCheck()
        }
        switch closeReason {
        case nil:
            break
        case .requested, .deadlineExpired:
            // Closed on purpose: by its user (a failed settings restore, a leased connection closed by hand), or by
            // the connection itself because a cancelled statement outlived its grace period. Nothing says the other
            // connections are affected.
            return .discard
        case .lost:
            // Lost or terminated by the server. A loss may have hit every connection (server restart, failover):
            // validate the idle ones before their next lease.
            instruments.fatalErrorObserved()
            logger.debug("connection closed while leased; replacing it", metadata: [LogKey.leaseSite: "\(context.acquireSite)"])
            return .discardAndValidateIdle
        }
        if let error = context.error, PostgresPool.isFatal(error) {
            instruments.fatalErrorObserved()
            return .discardAndValidateIdle
        }
        switch status {
        case .idle:
            break
        case .inTransaction, .inFailedTransaction:
            instruments.dirtyReturn(status: status, site: context.acquireSite, logger: logger)
            guard await rollBack(connection) else { return .discard }
        case .active, .unknown:
            instruments.dirtyReturn(status: status, site: context.acquireSite, logger: logger)
            return .discard
        }
        switch sessionReset.base {
        case .none:
            return .keep
        case .clean:
            guard (try? await connection.cleanSession()) != nil, !connection.isClosed else { return .discard }
            instruments.sessionReset()
            return .keep
        case .discardAll:
            guard (try? await connection.resetSession()) != nil, !connection.isClosed else { return .discard }
            instruments.sessionReset()
            return .keep
        }
    }

    /// Rolls back an open transaction; `true` when the connection is idle afterwards.
    ///
    /// It runs in the releasing task even when that task was cancelled (the usual reason for a dirty return): the
    /// rollback is not cancelled on the server, and the connection bounds it by the grace period (past it the
    /// connection closes).
    private func rollBack(_ connection: PostgresConnection) async -> Bool {
        guard (try? await connection.runCleanup("ROLLBACK")) != nil else { return false }
        return connection.transactionStatus == .idle
    }
}

extension PostgresPool {
    /// Whether an error means the connection is unusable: lost, or terminated by the server.
    static func isFatal(_ error: any Error) -> Bool {
        guard let error = error as? PostgresError else { return false }
        if error.code == .connectionClosed || error.code == .connectionFailed { return true }
        if let state = error.sqlState, fatalStates.contains(state) { return true }
        if let underlying = error.underlying { return isFatal(underlying) }
        return false
    }

    /// Admin shutdown, crash shutdown, cannot connect now: the server is going away or not ready.
    static let fatalStates: Set<SQLState> = [.adminShutdown, .crashShutdown, .cannotConnectNow]
}

/// The pool's PostgreSQL-specific metrics and counters, created once per pool.
///
/// `@unchecked Sendable`: the metric handles are immutable and thread-safe; `counts` is protected by its `Mutex`.
final class PostgresPoolInstruments: @unchecked Sendable {
    private let counts = Mutex(PostgresPool.Counters())
    private let poolName: String
    private let factory: any MetricsFactory
    private let validationRoundTrips: Counter
    private let validationFailures: Counter
    private let fatalErrors: Counter
    private let statementTimeouts: Counter
    private let cancellationsReused: Counter
    private let cancellationsClosed: Counter
    private let sessionResets: Counter
    private let readOnlyServerInvalidations: Counter

    init(poolName: String, factory: any MetricsFactory) {
        self.poolName = poolName
        self.factory = factory
        let pool = [("db.client.connection.pool.name", poolName)]
        validationRoundTrips = Counter(label: "reservoir.postgres.validations", dimensions: pool, factory: factory)
        validationFailures = Counter(
            label: "reservoir.postgres.validation_failures", dimensions: pool, factory: factory)
        fatalErrors = Counter(label: "reservoir.postgres.fatal_errors", dimensions: pool, factory: factory)
        statementTimeouts = Counter(label: "reservoir.postgres.statement_timeouts", dimensions: pool, factory: factory)
        cancellationsReused = Counter(
            label: "reservoir.postgres.cancellations", dimensions: pool + [("outcome", "reused")], factory: factory)
        cancellationsClosed = Counter(
            label: "reservoir.postgres.cancellations", dimensions: pool + [("outcome", "closed")], factory: factory)
        sessionResets = Counter(label: "reservoir.postgres.session_resets", dimensions: pool, factory: factory)
        readOnlyServerInvalidations = Counter(
            label: "reservoir.postgres.read_only_server_invalidations", dimensions: pool, factory: factory)
    }

    func snapshot() -> PostgresPool.Counters { counts.withLock { $0 } }

    func validationRoundTrip() {
        counts.withLock { $0.validationRoundTrips += 1 }
        validationRoundTrips.increment()
    }

    func validationFailed() {
        counts.withLock { $0.validationFailures += 1 }
        validationFailures.increment()
    }

    func fatalErrorObserved() {
        counts.withLock { $0.fatalErrors += 1 }
        fatalErrors.increment()
    }

    func statementTimedOut() {
        counts.withLock { $0.statementTimeouts += 1 }
        statementTimeouts.increment()
    }

    func cancellation(reused: Bool) {
        counts.withLock {
            if reused { $0.cancellationsReused += 1 } else { $0.cancellationsClosed += 1 }
        }
        (reused ? cancellationsReused : cancellationsClosed).increment()
    }

    func sessionReset() {
        counts.withLock { $0.sessionResets += 1 }
        sessionResets.increment()
    }

    func readOnlyServerFound() {
        counts.withLock { $0.readOnlyServerInvalidations += 1 }
        readOnlyServerInvalidations.increment()
    }

    /// Counts and logs a dirty return. The site is a bounded dimension: there are as many as acquire calls in the
    /// program's source, and this path is rare (each one is a bug to fix), so the counter is created here.
    func dirtyReturn(status: PostgresTransactionStatus, site: AcquireSite, logger: Logger) {
        let siteName = "\(site.fileID):\(site.line)"
        let state: String
        switch status {
        case .inTransaction: state = "in_transaction"
        case .inFailedTransaction: state = "in_failed_transaction"
        case .active: state = "active"
        case .unknown: state = "unknown"
        case .idle: state = "idle"
        }
        counts.withLock {
            $0.dirtyReturns += 1
            $0.dirtyReturnsBySite[siteName, default: 0] += 1
        }
        Counter(
            label: "reservoir.postgres.dirty_returns",
            dimensions: [("db.client.connection.pool.name", poolName), ("state", state), ("lease.site", siteName)],
            factory: factory
        ).increment()
        logger.warning(
            "a connection came back dirty (\(state)); it is rolled back or closed, never handed on",
            metadata: [LogKey.leaseSite: "\(site)", LogKey.transactionStatus: "\(state)"]
        )
    }
}
