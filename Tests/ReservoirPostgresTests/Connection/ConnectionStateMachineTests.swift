@testable import ReservoirPostgres
import Testing

/// The connection's command lifecycle without a server: whole actions compared, time passed in as values.
@Suite("ConnectionStateMachine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<Int>
    let start = ContinuousClock.Instant.now
    let grace = Duration.seconds(5)

    private func openMachine() -> Machine {
        var machine = Machine()
        #expect(machine.connected().isEmpty)
        return machine
    }

    @Test("commands queue while connecting and start in order once connected")
    func queueWhileConnecting() {
        var machine = Machine()
        #expect(
            machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .wait)
        #expect(
            machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .wait)
        #expect(machine.connected() == [.start(1)])
        #expect(machine.commandFinished(id: 1) == [.start(2)])
        #expect(machine.commandFinished(id: 2) == [])
        #expect(machine.isIdle)
    }

    @Test("a free connection starts a statement at once; a busy one queues it")
    func startOrWait() {
        var machine = openMachine()
        #expect(
            machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .start(1))
        #expect(
            machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .wait)
        #expect(machine.isBusy)
        // A finish for a command that is not running changes nothing.
        #expect(machine.commandFinished(id: 2) == [])
        #expect(machine.commandFinished(id: 1) == [.start(2)])
    }

    @Test("a session admits only its own statements until it ends; others wait in order")
    func sessions() {
        var machine = openMachine()
        #expect(
            machine.commandSubmitted(id: 1, command: 1, kind: .acquireSession(scope: 7), scope: nil, taskIsCancelled: false)
                == .sessionAcquired(1))
        #expect(
            machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .wait)
        #expect(
            machine.commandSubmitted(id: 3, command: 3, kind: .acquireSession(scope: 8), scope: nil, taskIsCancelled: false)
                == .wait)
        #expect(
            machine.commandSubmitted(id: 4, command: 4, kind: .statement(cancellable: true), scope: 7, taskIsCancelled: false)
                == .start(4))
        #expect(machine.commandFinished(id: 4) == [])
        #expect(machine.sessionEnded(8) == [])  // not the owner
        // The outsider statement runs first (it came first); the other session waits for it.
        #expect(machine.sessionEnded(7) == [.start(2)])
        #expect(machine.commandFinished(id: 2) == [.sessionAcquired(3)])
        #expect(machine.sessionOwner == 8)
    }

    @Test("a wait for idleness resolves at once when idle, else after the commands before it, and no cancel ends it")
    func awaitIdle() {
        var machine = openMachine()
        #expect(machine.commandSubmitted(id: 1, command: 1, kind: .awaitIdle, scope: nil, taskIsCancelled: false) == .idle(1))
        #expect(machine.isIdle)
        // A stream left part-way: its cancel is out, and it still holds the wire while it drains.
        #expect(
            machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .start(2))
        #expect(machine.cancelRequested(id: 2, now: start, gracePeriod: grace) == .sendCancelRequest)
        #expect(machine.activeCancelRequested)
        // The releasing task is itself cancelled (the usual reason to leave a stream): the wait is still queued...
        #expect(machine.commandSubmitted(id: 3, command: 3, kind: .awaitIdle, scope: nil, taskIsCancelled: true) == .wait)
        // ...and its cancellation does not remove it.
        #expect(machine.cancelRequested(id: 3, now: start, gracePeriod: grace) == .none)
        #expect(
            machine.commandSubmitted(id: 4, command: 4, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .wait)
        // The drain ends: the wait resolves without taking the wire, and the next statement starts.
        #expect(machine.commandFinished(id: 2) == [.idle(3), .start(4)])
        #expect(machine.activeID == 4)
        // A session holds the connection: a wait for idleness waits for its end too.
        #expect(machine.commandFinished(id: 4) == [])
        #expect(
            machine.commandSubmitted(id: 5, command: 5, kind: .acquireSession(scope: 9), scope: nil, taskIsCancelled: false)
                == .sessionAcquired(5))
        #expect(machine.commandSubmitted(id: 6, command: 6, kind: .awaitIdle, scope: 9, taskIsCancelled: false) == .wait)
        #expect(machine.sessionEnded(9) == [.idle(6)])
        #expect(machine.isIdle)
    }

    @Test("a wait for idleness ends with the connection when the drained command outlives its grace period")
    func awaitIdleEndsWithBrokenConnection() {
        var machine = openMachine()
        _ = machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        #expect(machine.cancelRequested(id: 1, now: start, gracePeriod: grace) == .sendCancelRequest)
        #expect(machine.commandSubmitted(id: 2, command: 2, kind: .awaitIdle, scope: nil, taskIsCancelled: false) == .wait)
        #expect(machine.deadlinePassed(now: start + grace) == .breakConnection(active: 1, outcome: .cancelled, waiting: [2]))
        #expect(machine.state == .closed(.deadlineExpired))
        // On a closed connection it fails at once, like any command.
        #expect(
            machine.commandSubmitted(id: 3, command: 3, kind: .awaitIdle, scope: nil, taskIsCancelled: false)
                == .failClosed(3, .deadlineExpired))
    }

    @Test("a task cancelled before its command exists never reaches the wire")
    func cancelledBeforeSubmission() {
        var machine = openMachine()
        #expect(
            machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: true)
                == .cancelled(1))
        #expect(machine.isIdle)
        // A command that must not be cancelled (COMMIT) still runs.
        #expect(
            machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: false), scope: nil, taskIsCancelled: true)
                == .start(2))
    }

    @Test("cancelling a waiting command removes it at once")
    func cancelWaiting() {
        var machine = openMachine()
        _ = machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        _ = machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        #expect(machine.cancelRequested(id: 2, now: start, gracePeriod: grace) == .cancelWaiting(2))
        #expect(machine.commandFinished(id: 1) == [])
        #expect(machine.isIdle)
    }

    @Test("cancelling a running statement asks for one server-side cancel and arms the grace period")
    func cancelRunning() {
        var machine = openMachine()
        _ = machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        #expect(machine.nextDeadline == nil)
        #expect(machine.cancelRequested(id: 1, now: start, gracePeriod: grace) == .sendCancelRequest)
        #expect(machine.activeCancelRequested)
        #expect(machine.nextDeadline == start + grace)
        let first = machine.takeCancelRequest()
        let second = machine.takeCancelRequest()
        #expect(first)
        #expect(!second)  // sent once
        // A second cancel (the stream's handler and the task's) changes nothing.
        #expect(machine.cancelRequested(id: 1, now: start + .seconds(1), gracePeriod: grace) == .none)
        #expect(machine.nextDeadline == start + grace)
        // The statement stops in time: no break.
        #expect(machine.deadlinePassed(now: start + .seconds(1)) == .none)
        #expect(machine.commandFinished(id: 1) == [])
        #expect(machine.nextDeadline == nil)
        #expect(machine.state == .open)
    }

    @Test("a cancelled statement that outlives its grace period breaks the connection and fails the waiters")
    func cancelDeadlineBreaks() {
        var machine = openMachine()
        _ = machine.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        _ = machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        _ = machine.cancelRequested(id: 1, now: start, gracePeriod: grace)
        #expect(machine.deadlinePassed(now: start + grace - .milliseconds(1)) == .none)
        #expect(
            machine.deadlinePassed(now: start + grace)
                == .breakConnection(active: 1, outcome: .cancelled, waiting: [2]))
        #expect(machine.state == .closed(.deadlineExpired))
        #expect(
            machine.commandSubmitted(id: 3, command: 3, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
                == .failClosed(3, .deadlineExpired))
        // The socket closing afterwards keeps the first reason.
        #expect(machine.connectionClosed(.lost) == .init(active: nil, waiting: []))
        #expect(machine.state == .closed(.deadlineExpired))
    }

    @Test("a COMMIT is never cancelled on the server: a cancel only bounds the wait for its answer")
    func commitIsAwaited() {
        var machine = openMachine()
        _ = machine.commandSubmitted(
            id: 1, command: 1, kind: .statement(cancellable: false), scope: 3, taskIsCancelled: false,
            expiryOutcome: .outcomeUnknown)
        #expect(machine.cancelRequested(id: 1, now: start, gracePeriod: grace) == .armDeadline)
        let cancelToSend = machine.takeCancelRequest()
        #expect(!cancelToSend)
        // The answer arrives in time: the command ends normally.
        #expect(machine.commandFinished(id: 1) == [])
        #expect(machine.state == .open)
    }

    @Test("a COMMIT whose answer does not come within the grace period ends with an unknown outcome")
    func commitOutcomeUnknown() {
        var machine = openMachine()
        _ = machine.commandSubmitted(
            id: 1, command: 1, kind: .statement(cancellable: false), scope: 3, taskIsCancelled: false,
            expiryOutcome: .outcomeUnknown)
        _ = machine.cancelRequested(id: 1, now: start, gracePeriod: grace)
        #expect(
            machine.deadlinePassed(now: start + .seconds(6))
                == .breakConnection(active: 1, outcome: .outcomeUnknown, waiting: []))
    }

    @Test("a command's own deadline bounds it without any cancel, and a later cancel keeps the earlier deadline")
    func ownDeadline() {
        var machine = openMachine()
        _ = machine.commandSubmitted(
            id: 1, command: 1, kind: .statement(cancellable: false), scope: nil, taskIsCancelled: false,
            deadline: start + .seconds(2))
        #expect(machine.nextDeadline == start + .seconds(2))
        #expect(machine.cancelRequested(id: 1, now: start, gracePeriod: grace) == .armDeadline)
        #expect(machine.nextDeadline == start + .seconds(2))
        #expect(
            machine.deadlinePassed(now: start + .seconds(2))
                == .breakConnection(active: 1, outcome: .cancelled, waiting: []))
    }

    @Test("a lost connection fails the running command and every waiter, and refuses new ones")
    func connectionLost() {
        var machine = openMachine()
        _ = machine.commandSubmitted(id: 1, command: 1, kind: .acquireSession(scope: 9), scope: nil, taskIsCancelled: false)
        _ = machine.commandSubmitted(id: 2, command: 2, kind: .statement(cancellable: true), scope: 9, taskIsCancelled: false)
        _ = machine.commandSubmitted(id: 3, command: 3, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        #expect(machine.connectionClosed(.lost) == .init(active: 2, waiting: [3]))
        #expect(machine.state == .closed(.lost))
        #expect(machine.sessionOwner == nil)
        #expect(machine.commandFinished(id: 2) == [])
        #expect(
            machine.commandSubmitted(id: 4, command: 4, kind: .acquireSession(scope: 10), scope: nil, taskIsCancelled: false)
                == .failClosed(4, .lost))
        #expect(machine.deadlinePassed(now: start + .seconds(100)) == .none)
    }

    @Test("a deliberate close carries its reason; a failed connect is a loss")
    func closeReasons() {
        var closing = openMachine()
        #expect(closing.connectionClosed(.requested) == .init(active: nil, waiting: []))
        #expect(closing.state == .closed(.requested))
        var failed = Machine()
        _ = failed.commandSubmitted(id: 1, command: 1, kind: .statement(cancellable: true), scope: nil, taskIsCancelled: false)
        #expect(failed.connectionClosed(.lost) == .init(active: nil, waiting: [1]))
        #expect(failed.connected() == [])
    }
}
