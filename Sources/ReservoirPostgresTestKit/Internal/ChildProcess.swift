import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a child process ended.
struct ProcessTermination: Sendable, Equatable, CustomStringConvertible {
    /// The exit status, or the signal number when ``killedBySignal`` is true.
    var status: Int32
    /// Whether a signal ended the process.
    var killedBySignal: Bool

    var succeeded: Bool { status == 0 && !killedBySignal }

    var description: String {
        killedBySignal ? "killed by signal \(status)" : "exit status \(status)"
    }
}

/// A spawned child process whose exit can be awaited without blocking a thread.
///
/// Foundation reaps the child on its own thread and calls the termination handler, which resumes every waiter.
final class ChildProcess: Sendable {
    private struct Waiters {
        var nextID: UInt64 = 0
        var continuations: [UInt64: CheckedContinuation<ProcessTermination?, Never>] = [:]
    }

    private enum ExitState {
        case running(Waiters)
        case exited(ProcessTermination)
    }

    /// The child's process id. Signals are sent only while the child has not been reaped, so the id cannot belong to
    /// another process by then.
    let pid: Int32
    let executable: String
    private let exitState: Mutex<ExitState>
    /// Keeps Foundation's process object (and its termination handler) alive as long as the child is referenced.
    private let process: Process

    private init(process: Process, executable: String) {
        self.process = process
        self.pid = process.processIdentifier
        self.executable = executable
        self.exitState = Mutex(.running(Waiters()))
    }

    /// Starts a child process with no signals blocked.
    ///
    /// A child inherits the signal mask of the thread that spawns it, and Swift's cooperative threads (libdispatch
    /// workers) block SIGTERM, SIGINT, SIGQUIT and most others: a tool spawned from one would ignore SIGTERM (the
    /// PostgreSQL server unblocks its own, `psql` and `pgbench` do not). So the spawn runs on a short-lived thread
    /// whose mask is empty.
    ///
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments, passed as they are (no shell).
    ///   - environment: The complete environment of the child.
    ///   - workingDirectory: The child's working directory.
    ///   - standardInput: A `FileHandle` or `Pipe` for stdin; `nil` means /dev/null.
    ///   - standardOutput: Where stdout goes; `nil` means /dev/null.
    ///   - standardError: Where stderr goes; `nil` means /dev/null.
    /// - Throws: Foundation's error when the program cannot be started.
    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        standardInput: FileHandle? = nil,
        standardOutput: FileHandle? = nil,
        standardError: FileHandle? = nil
    ) async throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory, isDirectory: true)
        process.standardInput = standardInput ?? FileHandle.nullDevice
        process.standardOutput = standardOutput ?? FileHandle.nullDevice
        process.standardError = standardError ?? FileHandle.nullDevice

        // The handler runs on Foundation's thread, possibly before `ChildProcess` exists: the box bridges the two.
        let box = ExitBox()
        process.terminationHandler = { finished in
            let termination = ProcessTermination(
                status: finished.terminationStatus,
                killedBySignal: finished.terminationReason == .uncaughtSignal
            )
            box.finish(termination)
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                var nothingBlocked = sigset_t()
                sigemptyset(&nothingBlocked)
                pthread_sigmask(SIG_SETMASK, &nothingBlocked, nil)
                do {
                    try process.run()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "PostgresTestServer spawn"
            thread.start()
        }
        let child = ChildProcess(process: process, executable: executable)
        box.attach(child)
        return child
    }

    fileprivate func finish(_ termination: ProcessTermination) {
        let waiters: Waiters? = exitState.withLock { state in
            switch state {
            case .running(let waiters):
                state = .exited(termination)
                return waiters
            case .exited:
                return nil
            }
        }
        guard let waiters else { return }
        for waiter in waiters.continuations.values {
            waiter.resume(returning: termination)
        }
    }

    /// How the child ended, or `nil` while it runs.
    var termination: ProcessTermination? {
        exitState.withLock { state in
            switch state {
            case .running: nil
            case .exited(let termination): termination
            }
        }
    }

    var isRunning: Bool { termination == nil }

    /// Waits until the child has exited. Not cancellable: the child's exit is always observed.
    func waitForExit() async -> ProcessTermination {
        // Without a timeout the waiter is only ever resumed by `finish`, which always passes a termination.
        await wait(timeout: nil) ?? ProcessTermination(status: -1, killedBySignal: false)
    }

    /// Waits until the child has exited or `timeout` passed, whichever comes first.
    ///
    /// Cancelling the calling task does not end the wait early: cleanup paths rely on observing the exit.
    ///
    /// - Returns: How the child ended, or `nil` when it still runs after `timeout`.
    func waitForExit(timeout: Duration) async -> ProcessTermination? {
        await wait(timeout: timeout)
    }

    private func wait(timeout: Duration?) async -> ProcessTermination? {
        await withCheckedContinuation { (continuation: CheckedContinuation<ProcessTermination?, Never>) in
            let registered: (id: UInt64?, done: ProcessTermination?) = exitState.withLock { state in
                switch state {
                case .running(var waiters):
                    let id = waiters.nextID
                    waiters.nextID += 1
                    waiters.continuations[id] = continuation
                    state = .running(waiters)
                    return (id, nil)
                case .exited(let termination):
                    return (nil, termination)
                }
            }
            if let done = registered.done {
                continuation.resume(returning: done)
                return
            }
            guard let id = registered.id, let timeout else { return }
            // A timer of its own, not tied to the caller, so a cancelled caller still waits the full timeout; and on
            // a serial dispatch queue rather than a task, so it fires even while the cooperative pool's few threads
            // are all busy (a test suite that blocks them must not turn a 1-second bound into a minute). Whichever
            // of the timer and `finish` removes the waiter first resumes it; the other finds it gone. A timer that
            // fires after the exit finds nothing to do; it holds the child until then.
            Self.timerQueue.asyncAfter(deadline: .now() + Self.dispatchInterval(timeout)) {
                self.timeOut(waiterID: id)
            }
        }
    }

    /// Where wait timeouts fire: a serial dispatch queue, served by dispatch's own (overcommitting) threads, not by
    /// the cooperative pool's.
    private static let timerQueue = DispatchQueue(label: "PostgresTestServer.ChildProcess.timeouts")

    private static func dispatchInterval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 { return .nanoseconds(0) }
        if seconds >= 1_000_000_000 { return .never }  // over 31 years
        return .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }

    private func timeOut(waiterID: UInt64) {
        let continuation: CheckedContinuation<ProcessTermination?, Never>? = exitState.withLock { state in
            switch state {
            case .running(var waiters):
                let continuation = waiters.continuations.removeValue(forKey: waiterID)
                state = .running(waiters)
                return continuation
            case .exited:
                return nil
            }
        }
        continuation?.resume(returning: nil)
    }

    /// Sends `signal` to the child if it has not been reaped yet.
    ///
    /// - Returns: Whether the signal was sent.
    @discardableResult
    func send(signal: Int32) -> Bool {
        exitState.withLock { state in
            switch state {
            case .running:
                return kill(pid, signal) == 0
            case .exited:
                return false
            }
        }
    }
}

/// Connects Foundation's termination handler, which exists before the `ChildProcess` does, to the `ChildProcess`.
private final class ExitBox: Sendable {
    private enum State {
        case waitingForOwner(early: ProcessTermination?)
        case attached(ChildProcess)
        case finished
    }

    private let state = Mutex(State.waitingForOwner(early: nil))

    func attach(_ child: ChildProcess) {
        let early: ProcessTermination? = state.withLock { state in
            switch state {
            case .waitingForOwner(let early):
                if let early {
                    state = .finished
                    return early
                }
                state = .attached(child)
                return nil
            case .attached, .finished:
                return nil
            }
        }
        if let early {
            child.finish(early)
        }
    }

    func finish(_ termination: ProcessTermination) {
        let child: ChildProcess? = state.withLock { state in
            switch state {
            case .waitingForOwner:
                state = .waitingForOwner(early: termination)
                return nil
            case .attached(let child):
                // Drops the reference: the process, its handler and this box no longer keep the child alive.
                state = .finished
                return child
            case .finished:
                return nil
            }
        }
        child?.finish(termination)
    }
}
