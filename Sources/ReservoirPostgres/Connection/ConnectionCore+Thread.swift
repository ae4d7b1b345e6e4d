import CLibPQ
import Synchronization
import Foundation
import Glibc
import Logging

extension ConnectionCore {
    /// Starts the connecting thread, which connects and then hands the connection to a reactor.
    func startThread() async throws {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                lock.withLock { connectContinuation = continuation }
                let thread = Thread { [self] in threadMain() }
                thread.name = "reservoir-pg-connect"
                thread.stackSize = 512 * 1024
                thread.start()
            }
        } onCancel: {
            lock.withLock {
                closeRequested = true
                wakeThread()
            }
        }
    }

    /// Asks the thread to close the connection; returns at once.
    func requestClose() {
        lock.withLock {
            closeRequested = true
            wakeThread()
        }
    }

    /// Closes the connection and waits until the thread has released it.
    func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            lock.lock()
            if threadFinished {
                lock.unlock()
                continuation.resume()
                return
            }
            closeContinuations.append(continuation)
            closeRequested = true
            wakeThread()
            lock.unlock()
        }
    }

    // MARK: The thread.

    private func threadMain() {
        clibpq_set_thread_name("reservoir-pg-connect")
        let connectResult = connectOnThread()
        lock.lock()
        let continuation = connectContinuation
        connectContinuation = nil
        switch connectResult {
        case .success:
            isConnected = true
            _ = machine.connected()  // nothing can have queued: the connection is not handed out before this
            // From here on the reactor waits for the connection (a close requested meanwhile is seen there too).
            let reactor = ConnectionReactor.next()
            self.reactor = reactor
            reactor.markDirty(self)
            lock.unlock()
            continuation?.resume()
        case .failure(let error):
            closedError = error
            _ = machine.connectionClosed(.lost)
            lock.unlock()
            continuation?.resume(throwing: error)
            shutDown()
        }
    }

    /// Connects with `PQconnectStartParams`/`PQconnectPoll` under the configured deadline.
    private func connectOnThread() -> Result<Void, PostgresError> {
        do {
            try configuration.validate()
        } catch let error as PostgresError {
            return .failure(error)
        } catch {
            return .failure(PostgresError(.invalidConfiguration, message: "\(error)"))
        }
        let deadline = ContinuousClock.now.advanced(by: configuration.connectTimeout)
        let parameters = configuration.libpqParameters()
        let connection: OpaquePointer? = withCStringArrays(parameters.map(\.0), parameters.map(\.1)) {
            keys, values in PQconnectStartParams(keys, values, 0)
        }
        guard let connection else {
            return .failure(PostgresError(.connectionFailed, message: "libpq could not allocate a connection"))
        }
        // Verbose while connecting: a failure the server reports then carries its SQLSTATE as a structured prefix
        // (`FATAL:  28P01: …`), which tells a permanent failure (wrong password, unknown role, missing database) from
        // a transient one in any locale. Back to the default once connected, for the messages of a broken connection.
        PQsetErrorVerbosity(connection, PQERRORS_VERBOSE)
        func failed(_ code: PostgresError.Code, _ message: String) -> Result<Void, PostgresError> {
            PQfinish(connection)
            return .failure(PostgresError(code, message: configuration.redact(message)))
        }
        func connectFailed() -> Result<Void, PostgresError> {
            let message = PostgresError.connectionMessage(connection, fallback: "connection failed")
            PQfinish(connection)
            return .failure(PostgresError.connectFailure(libpqMessage: configuration.redact(message)))
        }
        PQsetNoticeReceiver(connection, noticeReceiver, Unmanaged.passUnretained(self).toOpaque())
        if PQstatus(connection) == CONNECTION_BAD {
            return connectFailed()
        }
        var status = PGRES_POLLING_WRITING
        while true {
            let socket = PQsocket(connection)  // re-read every time: libpq may replace the socket
            let events = Int16(status == PGRES_POLLING_READING ? POLLIN : POLLOUT)
            var descriptors = [
                pollfd(fd: socket, events: events, revents: 0),
                pollfd(fd: wakeupDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero {
                return failed(
                    .connectTimeout,
                    "connecting took longer than the connect timeout of \(configuration.connectTimeout) "
                        + "(\(PostgresError.connectPhase(PQstatus(connection))))"
                )
            }
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000
                + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&descriptors, 2, milliseconds)
            if ready < 0, errno != EINTR {
                return failed(.connectionFailed, "poll failed with errno \(errno)")
            }
            if descriptors[1].revents != 0 {
                clibpq_wakeup_drain(wakeupDescriptor)
                if lock.withLock({ closeRequested }) {
                    PQfinish(connection)
                    return .failure(PostgresError(.connectionFailed, message: "connecting was cancelled",
                                                  underlying: CancellationError()))
                }
            }
            if ready <= 0 || descriptors[0].revents == 0 { continue }
            status = PQconnectPoll(connection)
            if status == PGRES_POLLING_OK { break }
            if status == PGRES_POLLING_FAILED {
                return connectFailed()
            }
        }
        PQsetErrorVerbosity(connection, PQERRORS_DEFAULT)
        PQsetnonblocking(connection, 1)
        lock.withLock {
            self.connection = connection
            cancelHandle = PQgetCancel(connection)
            backendProcessID = PQbackendPID(connection)
        }
        logger.debug("postgres connection opened", metadata: [LogKey.backendPID: "\(PQbackendPID(connection))"])
        return .success(())
    }

    /// A poll timeout in milliseconds, rounded up so that the wake-up is never early.
    static func pollMilliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    /// The running command outlived its deadline: break the connection so that nothing is ever sent on a wire in an
    /// unknown state. Requires the lock.
    private func deadlineExpired(now: ContinuousClock.Instant, completions: inout Completions) {
        guard case .breakConnection(let command, let outcome, let waiting) = machine.deadlinePassed(now: now) else {
            return
        }
        let grace = configuration.cancellationGracePeriod
        let error = PostgresError(
            .connectionClosed,
            message: "the connection was closed because a statement did not end within the grace period (\(grace))"
        )
        closedError = error
        isConnected = false
        closeRequested = true  // the thread ends and releases libpq
        switch outcome {
        case .cancelled:
            cancelledCommands.wrappingAdd(1, ordering: .relaxed)
            completions.append(command, .cancelled)
        case .outcomeUnknown:
            var unknown = PostgresError(
                .commitOutcomeUnknown,
                message: "COMMIT was sent but its answer did not arrive within the grace period (\(grace)) after "
                    + "the task was cancelled; the connection was closed, and the transaction may or may not have "
                    + "been committed",
                underlying: error
            )
            unknown.statement = command.statementText
            completions.append(command, .failure(unknown))
        }
        for waiter in waiting { completions.append(waiter, .failure(error)) }
        finishListeners(completions: &completions)
        logger.debug("postgres connection closed: a statement outlived its deadline")
    }

    /// One turn of the reactor for this connection: flush, read, parse results and notifications, send a requested
    /// cancel, break the connection if its running command outlived its deadline; then what to wait for next.
    ///
    /// Runs on the reactor's thread, on every socket event and every time `wakeThread()` marked the connection.
    ///
    /// - Returns: The socket events and deadline to wait for, or that the connection is to close (the reactor stops
    ///   waiting on it and calls ``shutDown()``).
    func reactorTurn(readable: Bool, writable: Bool, completions: inout Completions) -> ReactorInterest {
        lock.lock()
        var cancelToSend: OpaquePointer?
        if isConnected, let connection {
            // Read first, then flush: the server may be blocked sending us results (or notices) and not reading ours.
            if readable, PQconsumeInput(connection) == 0 {
                brokeWithMessage(connection, completions: &completions)
            } else if needsWrite {
                switch PQflush(connection) {
                case 0: needsWrite = false
                case 1: break
                default: brokeWithMessage(connection, completions: &completions)
                }
            }
            if isConnected {
                if let active {
                    drive(active, on: connection, completions: &completions)
                } else {
                    // Parse what arrived while idle (a FATAL notice, a notification) so it is not missed. Anything but
                    // a notification makes the connection suspect: the next lease proves it with a round trip.
                    _ = PQisBusy(connection)
                    if PQstatus(connection) == CONNECTION_BAD {
                        brokeWithMessage(connection, completions: &completions)
                    } else if readable, deliverNotifications(connection) == 0 {
                        sawUnpromptedInput = true
                    }
                }
                if isConnected { deliverNotifications(connection) }
            }
            if isConnected, machine.takeCancelRequest() {
                cancelToSend = PQgetCancel(connection)
            }
        }
        var deadline = machine.nextDeadline
        if let passed = deadline, passed <= .now {
            deadlineExpired(now: .now, completions: &completions)
            deadline = machine.nextDeadline
        }
        // The socket as libpq has it now: -1 once libpq has dropped (and closed) it after a failed read.
        let socket = connection.map { PQsocket($0) } ?? -1
        var events: UInt32 = 0
        if isConnected, !closeRequested, socket >= 0 {
            if !(active?.stream?.paused ?? false) { events |= EPOLLIN.rawValue }
            if needsWrite { events |= EPOLLOUT.rawValue }
        }
        let interest = ReactorInterest(socket: socket, events: events, deadline: deadline, closing: closeRequested)
        lock.unlock()
        if let cancelToSend { sendCancelRequest(cancelToSend) }
        return interest
    }

    /// Sends a server-side cancel request from a short-lived thread of its own.
    ///
    /// `PQcancel` opens a connection to the postmaster and blocks until it has processed the request (a few
    /// milliseconds; as long as a TCP connect may take when the network is gone). It runs off this thread so that
    /// the connection's own wait keeps honouring the cancel's deadline. The command stays running until it has
    /// drained (or the deadline breaks the connection), so nothing else is sent on the connection before that.
    private func sendCancelRequest(_ handle: OpaquePointer) {
        let logger = self.logger
        let box = CancelHandle(handle)
        let thread = Thread {
            var buffer = [CChar](repeating: 0, count: 256)
            if PQcancel(box.handle, &buffer, 256) == 0 {
                let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                logger.debug("postgres cancel request failed", metadata: [LogKey.error: "\(message)"])
            }
            PQfreeCancel(box.handle)
        }
        thread.name = "reservoir-pg-cancel"
        thread.stackSize = 128 * 1024
        thread.start()
    }

    private func brokeWithMessage(_ connection: OpaquePointer, completions: inout Completions) {
        let message = PostgresError.connectionMessage(connection, fallback: "the server closed the connection")
        var error = PostgresError(.connectionClosed, message: message)
        if let serverError = active?.protocolState?.pendingError, serverError.sqlState != nil {
            error.sqlState = serverError.sqlState
            error.message = serverError.message
            error.underlying = serverError
        }
        connectionBroke(error, completions: &completions)
    }

    /// Forwards parsed notifications to listeners. Requires the lock.
    ///
    /// - Returns: How many notifications were parsed.
    @discardableResult
    func deliverNotifications(_ connection: OpaquePointer) -> Int {
        var count = 0
        while let notify = PQnotifies(connection) {
            count += 1
            let channel = String(cString: notify.pointee.relname)
            let payload = String(cString: notify.pointee.extra)
            let processID = notify.pointee.be_pid
            PQfreemem(notify)
            guard let channelListeners = listeners[channel] else { continue }
            let notification = PostgresNotification(channel: channel, payload: payload, processID: processID)
            for (_, continuation) in channelListeners { continuation.yield(notification) }
        }
        return count
    }

    /// Releases libpq and resumes everyone still waiting: the last thing done for the connection, by its reactor (or by
    /// the connecting thread when connecting failed).
    func shutDown() {
        var completions = Completions()
        lock.lock()
        connectionBroke(
            PostgresError(.connectionClosed, message: "the connection was closed"),
            reason: .requested,
            completions: &completions
        )
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        cancelHandle = nil
        let opened = connection != nil  // set only once a connect succeeded
        if let connection { PQfinish(connection) }
        connection = nil
        threadFinished = true
        let closers = closeContinuations
        closeContinuations = []
        lock.unlock()
        completions.resumeAll()
        for closer in closers { closer.resume() }
        // A connection that never opened was never announced; its failure is thrown to whoever connected.
        if opened { logger.debug("postgres connection closed") }
    }
}

/// A `PGcancel` handed to the thread that sends the cancel request, which frees it.
private struct CancelHandle: @unchecked Sendable {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
}

/// The notice receiver libpq calls while parsing, on the thread that called into libpq, with the lock held.
private let noticeReceiver: PQnoticeReceiver = { context, result in
    guard let context, let result else { return }
    let core = Unmanaged<ConnectionCore>.fromOpaque(context).takeUnretainedValue()
    func field(_ code: Int32) -> String? {
        guard let value = PQresultErrorField(result, code) else { return nil }
        return String(cString: value)
    }
    let severity = field(CLIBPQ_DIAG_SEVERITY_NONLOCALIZED) ?? "NOTICE"
    let message = field(CLIBPQ_DIAG_MESSAGE_PRIMARY) ?? ""
    var metadata: Logger.Metadata = [LogKey.severity: "\(severity)"]
    if let sqlState = field(CLIBPQ_DIAG_SQLSTATE) { metadata[LogKey.sqlState] = "\(sqlState)" }
    if let detail = field(CLIBPQ_DIAG_MESSAGE_DETAIL) { metadata[LogKey.detail] = "\(detail)" }
    if let hint = field(CLIBPQ_DIAG_MESSAGE_HINT) { metadata[LogKey.hint] = "\(hint)" }
    let level: Logger.Level
    switch severity {
    case "WARNING": level = .warning
    case "NOTICE": level = .notice
    case "FATAL", "PANIC": level = .debug  // reported to the caller as a connection error
    default: level = .debug
    }
    core.logger.log(level: level, "\(message)", metadata: metadata)
}

/// Calls `body` with NULL-terminated C string arrays for `keys` and `values`.
func withCStringArrays<R>(
    _ keys: [String],
    _ values: [String],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>) -> R
) -> R {
    let keyPointers = keys.map { strdup($0) } + [nil]
    let valuePointers = values.map { strdup($0) } + [nil]
    defer {
        keyPointers.forEach { free($0) }
        valuePointers.forEach { free($0) }
    }
    let keyConst = keyPointers.map { $0.map { UnsafePointer($0) } }
    let valueConst = valuePointers.map { $0.map { UnsafePointer($0) } }
    return keyConst.withUnsafeBufferPointer { keyBuffer in
        valueConst.withUnsafeBufferPointer { valueBuffer in
            body(keyBuffer.baseAddress!, valueBuffer.baseAddress!)
        }
    }
}
