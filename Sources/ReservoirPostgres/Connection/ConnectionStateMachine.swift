import DequeModule

/// The instant the command deadlines are stored relative to (see `ConnectionStateMachine.Entry.deadline`). Read once;
/// the machine's decisions never depend on its value, only on the instants the shell passes in.
private let deadlineEpoch = ContinuousClock.now

/// The life of the commands on one connection: which command holds the wire, which wait, which scope (transaction)
/// owns the connection, what a cancellation does, when a deadline breaks the connection, and how it ends.
///
/// Pure: every event takes the current time as a value and returns what the shell must do; it never calls libpq,
/// locks, reads a clock, logs or resumes a continuation. `ConnectionCore` owns one behind its lock and performs the
/// actions after unlocking (the continuations) or with the lock held (the libpq calls, which need it).
///
/// `Command` is the shell's payload for a command (its statement, its protocol phase, its continuation); the machine
/// only hands it back in actions. The unit tests use plain integers.
///
/// Cancellation, the numbered cases that the shell relies on:
/// 1. A command still waiting for the connection is removed at once: `.cancelWaiting`.
/// 2. A running command whose task is cancelled gets a deadline of `now + gracePeriod` and a server-side cancel
///    request (`.sendCancelRequest`). If it has not ended by the deadline, ``deadlinePassed(now:)`` breaks the
///    connection: the wire is in an unknown state and must never serve anyone else.
/// 3. A running command that must not be cancelled on the server (`COMMIT`: once it is on the wire, stopping it would
///    turn a possibly committed transaction into an unknown one) only gets the deadline (`.armDeadline`): the answer
///    is awaited for up to the grace period, and past it the connection breaks and the command ends with
///    ``ExpiryOutcome/outcomeUnknown``.
/// 4. A command may come with a deadline of its own (a rollback on behalf of a cancelled task): the same expiry.
struct ConnectionStateMachine<Command> {
    /// How a command that outlived its deadline ends.
    enum ExpiryOutcome: Equatable {
        /// The caller asked for the cancellation: it gets `CancellationError`.
        case cancelled
        /// The command may or may not have taken effect (a `COMMIT`): the caller gets
        /// ``PostgresError/Code/commitOutcomeUnknown``.
        case outcomeUnknown
    }

    /// What a command is to the connection.
    enum Kind: Equatable {
        /// A statement, script, pipeline or stream: it holds the wire until its results have been read.
        case statement(cancellable: Bool)
        /// Makes `scope` the exclusive owner of the connection (a transaction) until ``sessionEnded(_:)``.
        case acquireSession(scope: UInt64)
        /// Waits until the commands before it have ended and no session holds the connection, then resolves without
        /// taking the connection (a pool waits so for a stream abandoned part-way to drain). The submitting task's
        /// cancellation does not end the wait: what bounds it is the deadline of the command it waits for.
        case awaitIdle
    }

    /// Why the connection ended.
    enum CloseReason: Equatable {
        /// ``closeRequested()``: the owner closed it.
        case requested
        /// A cancelled or deadline-bound command did not end within its deadline; the connection was broken so that
        /// nothing is ever sent on a wire in an unknown state.
        case deadlineExpired
        /// The server or the network ended it (or the connection never opened).
        case lost
    }

    struct Entry {
        let id: UInt64
        let command: Command
        let kind: Kind
        let scope: UInt64?
        /// When the command must have ended, once a cancel or its own deadline set one.
        ///
        /// Stored as a `Duration` from a fixed instant: `ContinuousClock.Instant` is not frozen, so a struct holding
        /// one has no fixed layout, and every copy of an entry (one per statement, and more) went through its value
        /// witnesses; `Duration` is frozen.
        var deadline: ContinuousClock.Instant? {
            get { deadlineOffset.map { deadlineEpoch.advanced(by: $0) } }
            set { deadlineOffset = newValue.map { deadlineEpoch.duration(to: $0) } }
        }
        var deadlineOffset: Duration?
        /// The task was cancelled while the command ran.
        var cancelRequested = false
        /// The server-side cancel request still has to be sent (by the connection's reactor thread).
        var cancelRequestPending = false
        var expiryOutcome: ExpiryOutcome
    }

    /// The connection's state.
    ///
    /// `.connecting` → `.open` → `.closed`; `.connecting` → `.closed` when the connect fails.
    enum State: Equatable {
        /// The reactor thread is connecting; commands queue up.
        case connecting
        /// Commands run.
        case open
        /// Nothing runs any more; commands fail with the connection's error.
        case closed(CloseReason)
    }

    private(set) var state = State.connecting
    private(set) var active: Entry?
    private(set) var waiting = Deque<Entry>()
    /// The scope (transaction) that owns the connection: only its commands may run.
    private(set) var sessionOwner: UInt64?

    init() {}

    // MARK: Actions.

    /// Indicates what the shell does after ``commandSubmitted(_:)``.
    enum SubmitAction {
        /// Indicates that the command now holds the wire: send its first step.
        case start(Command)
        /// Indicates that the session was acquired at once: resume the command with `.done`.
        case sessionAcquired(Command)
        /// Indicates that an ``Kind/awaitIdle`` command found the connection idle: resume it with `.done`.
        case idle(Command)
        /// Indicates that the command waits for the connection; nothing to do now.
        case wait
        /// Indicates that the task was already cancelled: resume the command with `.cancelled`.
        case cancelled(Command)
        /// Indicates that the connection is closed: fail the command with the connection's error.
        case failClosed(Command, CloseReason)
    }

    /// Indicates what the shell does when the connection became free: for each element, in order.
    enum NextAction {
        /// Indicates that this command now holds the wire: send its first step.
        case start(Command)
        /// Indicates that this command acquired the session: resume it with `.done`.
        case sessionAcquired(Command)
        /// Indicates that the connection became idle for this ``Kind/awaitIdle`` command: resume it with `.done`.
        case idle(Command)
    }

    /// Indicates what the shell does after ``cancelRequested(id:now:gracePeriod:)``.
    enum CancelAction {
        /// Indicates that the command was waiting and has been removed: resume it with `.cancelled`.
        case cancelWaiting(Command)
        /// Indicates that the running command must be cancelled on the server: wake the connection's reactor thread, which
        /// sends the cancel request and waits with the new deadline.
        case sendCancelRequest
        /// Indicates that the running command is not cancelled on the server but must end by a deadline: wake the
        /// connection's reactor thread so that its wait honours the new deadline.
        case armDeadline
        /// Indicates that there is nothing to cancel (the command has ended, or was cancelled already).
        case none
    }

    /// Indicates what the shell does after ``deadlinePassed(now:)``.
    enum DeadlineAction {
        /// Indicates that the running command outlived its deadline: break the connection (close the socket), end the
        /// command with `outcome`, and fail every waiting command with the connection's error.
        case breakConnection(active: Command, outcome: ExpiryOutcome, waiting: [Command])
        /// Indicates that no deadline has passed.
        case none
    }

    /// Indicates what the shell does after ``connectionClosed(_:)``.
    struct CloseAction {
        /// The running command, to fail with the connection's error (or `nil`).
        var active: Command?
        /// The waiting commands, to fail with the connection's error.
        var waiting: [Command]
    }

    // MARK: Events.

    /// The connection opened: queued commands may run.
    mutating func connected() -> [NextAction] {
        guard case .connecting = state else { return [] }
        state = .open
        return startNext()
    }

    /// A task submitted a command.
    ///
    /// - Parameters:
    ///   - id: The command's identity, for cancellation.
    ///   - command: The shell's payload.
    ///   - kind: A statement (cancellable on the server or not) or a session acquisition.
    ///   - scope: The session (transaction) the command belongs to, or `nil`.
    ///   - taskIsCancelled: Whether the submitting task is already cancelled (its cancellation handler may have
    ///     run before the command existed and found nothing to cancel).
    ///   - deadline: When the command must have ended, or `nil`.
    ///   - expiryOutcome: How the command ends if it outlives a deadline.
    mutating func commandSubmitted(
        id: UInt64,
        command: Command,
        kind: Kind,
        scope: UInt64?,
        taskIsCancelled: Bool,
        deadline: ContinuousClock.Instant? = nil,
        expiryOutcome: ExpiryOutcome = .cancelled
    ) -> SubmitAction {
        if case .closed(let reason) = state { return .failClosed(command, reason) }
        let cancellable: Bool
        switch kind {
        case .statement(let isCancellable): cancellable = isCancellable
        case .acquireSession: cancellable = true
        case .awaitIdle: cancellable = false
        }
        if taskIsCancelled && cancellable { return .cancelled(command) }
        let entry = Entry(
            id: id, command: command, kind: kind, scope: scope,
            deadlineOffset: deadline.map { deadlineEpoch.duration(to: $0) }, expiryOutcome: expiryOutcome)
        guard state == .open, active == nil, isEligible(entry) else {
            waiting.append(entry)
            return .wait
        }
        switch kind {
        case .acquireSession(let owner):
            sessionOwner = owner
            return .sessionAcquired(command)
        case .awaitIdle:
            return .idle(command)
        case .statement:
            active = entry
            return .start(command)
        }
    }

    /// The running command ended (its results were read, or sending it failed): the next ones may run.
    ///
    /// - Parameter id: The command that ended.
    /// - Returns: What to start, in order. Empty when the command was not the running one.
    mutating func commandFinished(id: UInt64) -> [NextAction] {
        guard let active, active.id == id else { return [] }
        self.active = nil
        return startNext()
    }

    /// The scope ended its session (its transaction is over): commands of other scopes may run.
    mutating func sessionEnded(_ scope: UInt64) -> [NextAction] {
        guard sessionOwner == scope else { return [] }
        sessionOwner = nil
        return startNext()
    }

    /// The task of command `id` was cancelled.
    mutating func cancelRequested(id: UInt64, now: ContinuousClock.Instant, gracePeriod: Duration) -> CancelAction {
        if let index = waiting.firstIndex(where: { $0.id == id }) {
            // A wait for idleness is not the task's to end: it ends when the connection is idle (or closed).
            if waiting[index].kind == .awaitIdle { return .none }
            let entry = waiting.remove(at: index)
            return .cancelWaiting(entry.command)
        }
        guard var entry = active, entry.id == id, !entry.cancelRequested else { return .none }
        entry.cancelRequested = true
        let deadline = now.advanced(by: gracePeriod)
        entry.deadline = entry.deadline.map { min($0, deadline) } ?? deadline
        let action: CancelAction
        switch entry.kind {
        case .statement(cancellable: true), .acquireSession:
            entry.cancelRequestPending = true
            action = .sendCancelRequest
        case .statement(cancellable: false), .awaitIdle:
            action = .armDeadline
        }
        active = entry
        return action
    }

    /// The connection's reactor thread takes the pending server-side cancel request, once.
    ///
    /// - Returns: `true` when a cancel request must be sent now.
    mutating func takeCancelRequest() -> Bool {
        guard var entry = active, entry.cancelRequestPending else { return false }
        entry.cancelRequestPending = false
        active = entry
        return true
    }

    /// Whether the running command's task asked for a cancellation (its SQLSTATE 57014 is then ours, not a timeout).
    var activeCancelRequested: Bool { active?.cancelRequested ?? false }

    /// The earliest deadline the connection's reactor thread must wake up for, or `nil` to wait without one.
    var nextDeadline: ContinuousClock.Instant? { active?.deadline }

    /// The connection's reactor thread woke up at `now`.
    mutating func deadlinePassed(now: ContinuousClock.Instant) -> DeadlineAction {
        guard case .open = state, let entry = active, let deadline = entry.deadline, deadline <= now else {
            return .none
        }
        state = .closed(.deadlineExpired)
        active = nil
        sessionOwner = nil
        let waiters = waiting.map(\.command)
        waiting.removeAll()
        return .breakConnection(active: entry.command, outcome: entry.expiryOutcome, waiting: waiters)
    }

    /// The connection ended: the server or the network closed it, the connect failed, or its owner closed it.
    ///
    /// - Parameter reason: Why; the first reason sticks.
    mutating func connectionClosed(_ reason: CloseReason) -> CloseAction {
        if case .closed = state { return CloseAction(active: nil, waiting: []) }
        state = .closed(reason)
        let running = active?.command
        active = nil
        sessionOwner = nil
        let waiters = waiting.map(\.command)
        waiting.removeAll()
        return CloseAction(active: running, waiting: waiters)
    }

    /// Whether the connection can be handed to a new user: open, nothing running or waiting, no session.
    var isIdle: Bool { state == .open && active == nil && waiting.isEmpty && sessionOwner == nil }

    /// Whether a command is running or waiting, or a session holds the connection.
    var isBusy: Bool { active != nil || !waiting.isEmpty || sessionOwner != nil }

    /// The payload of the running command.
    var activeCommand: Command? { active?.command }

    /// The identity of the running command.
    var activeID: UInt64? { active?.id }

    // MARK: Helpers.

    private func isEligible(_ entry: Entry) -> Bool {
        switch entry.kind {
        case .acquireSession, .awaitIdle: sessionOwner == nil
        case .statement: sessionOwner == nil || sessionOwner == entry.scope
        }
    }

    /// Starts waiting commands in order while the connection is free: session acquisitions resolve at once, the
    /// first eligible statement takes the wire.
    private mutating func startNext() -> [NextAction] {
        guard state == .open else { return [] }
        var actions: [NextAction] = []
        while active == nil, let index = waiting.firstIndex(where: { isEligible($0) }) {
            let entry = waiting.remove(at: index)
            switch entry.kind {
            case .acquireSession(let owner):
                sessionOwner = owner
                actions.append(.sessionAcquired(entry.command))
            case .awaitIdle:
                actions.append(.idle(entry.command))
            case .statement:
                active = entry
                actions.append(.start(entry.command))
            }
        }
        return actions
    }
}

extension ConnectionStateMachine.SubmitAction: Equatable where Command: Equatable {}
extension ConnectionStateMachine.NextAction: Equatable where Command: Equatable {}
extension ConnectionStateMachine.CancelAction: Equatable where Command: Equatable {}
extension ConnectionStateMachine.DeadlineAction: Equatable where Command: Equatable {}
extension ConnectionStateMachine.CloseAction: Equatable where Command: Equatable {}
