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

    init(status: Int32, killedBySignal: Bool) {
        self.status = status
        self.killedBySignal = killedBySignal
    }

    /// Decodes a status from `waitpid` of a child that has ended (exited, or killed by a signal).
    init(waitStatus: Int32) {
        let signal = waitStatus & 0x7f
        if signal == 0 {
            self.init(status: (waitStatus >> 8) & 0xff, killedBySignal: false)
        } else {
            self.init(status: signal, killedBySignal: true)
        }
    }

    var description: String {
        killedBySignal ? "killed by signal \(status)" : "exit status \(status)"
    }
}

/// A spawned child process whose exit can be awaited without blocking a thread of the cooperative pool.
///
/// A thread of its own per child waits for the process id to exit (`waitid` with `WNOWAIT`, which leaves the child
/// a zombie), then reaps it under the same lock ``send(signal:)`` holds: a signal can never reach a process id that
/// was reaped and reused. The exit is observed whatever descriptors the child or its own children hold (see
/// ``Spawn`` for why that matters).
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

    private init(pid: Int32, executable: String) {
        self.pid = pid
        self.executable = executable
        self.exitState = Mutex(.running(Waiters()))
    }

    /// Starts a child process (through ``Spawn``: only the given standard descriptors, no signal blocked) and a
    /// thread that reaps it.
    ///
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments, passed as they are (no shell).
    ///   - environment: The complete environment of the child.
    ///   - workingDirectory: The child's working directory.
    ///   - standardInput: A `FileHandle` for stdin; `nil` means /dev/null.
    ///   - standardOutput: Where stdout goes; `nil` means /dev/null.
    ///   - standardError: Where stderr goes; `nil` means /dev/null.
    /// - Throws: ``Spawn/Failure`` when the program cannot be started.
    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        standardInput: FileHandle? = nil,
        standardOutput: FileHandle? = nil,
        standardError: FileHandle? = nil
    ) throws -> ChildProcess {
        let pid = try Spawn.start(
            executable: executable,
            arguments: arguments,
            environment: environment,
            workingDirectory: workingDirectory,
            standardInput: standardInput?.fileDescriptor,
            standardOutput: standardOutput?.fileDescriptor,
            standardError: standardError?.fileDescriptor
        )
        let child = ChildProcess(pid: pid, executable: executable)
        // The thread holds the child until it has reaped it: a child whose owner let go is still reaped.
        let reaper = Thread { child.awaitExitAndReap() }
        reaper.name = "PostgresTestServer reaper"
        reaper.stackSize = 512 * 1024  // ample for a blocking wait and a resume, sanitizers included
        reaper.start()
        return child
    }

    /// Blocks this (dedicated) thread until the child has exited, then reaps it and resumes the waiters.
    private func awaitExitAndReap() {
        var information = siginfo_t()
        while waitid(P_PID, id_t(pid), &information, WEXITED | WNOWAIT) != 0 {
            // EINTR: wait again. ECHILD cannot happen (only this thread reaps the child); should it, reaping below
            // reports it rather than waiting forever.
            if errno != EINTR { break }
        }
        // Reaping and the state change happen under the lock that `send(signal:)` holds while it signals; the child
        // is a zombie by now, so `waitpid` returns at once.
        let (waiters, termination): (Waiters?, ProcessTermination) = exitState.withLock { state in
            let termination = Spawn.reap(pid)
            switch state {
            case .running(let waiters):
                state = .exited(termination)
                return (waiters, termination)
            case .exited(let known):
                return (nil, known)
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
        // Without a timeout the waiter is only ever resumed by the reaper, which always passes a termination.
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
            // of the timer and the reaper removes the waiter first resumes it; the other finds it gone. A timer that
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

extension ChildProcess {
    /// What a program run to its end printed, and how it ended.
    struct Output: Sendable {
        var termination: ProcessTermination
        var standardOutput: String
        var standardError: String
    }

    /// Runs a program to its end with `input` on its stdin, collecting stdout and stderr in files (so a large output
    /// never blocks it) in `scratchDirectory`, removed afterwards.
    ///
    /// Cancelling the calling task sends the program SIGTERM and still waits for it to exit; the caller decides
    /// whether to throw `CancellationError`.
    ///
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/fileSystem`` when the files cannot be made;
    ///   ``Spawn/Failure`` when the program cannot be started.
    static func run(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        input: String? = nil,
        scratchDirectory: String
    ) async throws -> Output {
        let files = try OutputFiles(directory: scratchDirectory, input: input)
        defer { files.remove() }
        let child = try spawn(
            executable: executable,
            arguments: arguments,
            environment: environment,
            workingDirectory: workingDirectory,
            standardInput: files.inputHandle,
            standardOutput: files.outputHandle,
            standardError: files.errorHandle
        )
        let termination = await withTaskCancellationHandler {
            await child.waitForExit()
        } onCancel: {
            child.send(signal: SIGTERM)
        }
        return Output(
            termination: termination,
            standardOutput: Cluster.text(ofFile: files.outputPath),
            standardError: Cluster.text(ofFile: files.errorPath)
        )
    }
}

/// The files behind one run: stdin (when given), stdout and stderr.
private struct OutputFiles {
    let outputPath: String
    let errorPath: String
    let inputPath: String?
    let outputHandle: FileHandle
    let errorHandle: FileHandle
    let inputHandle: FileHandle?

    init(directory: String, input: String?) throws {
        let stem = directory + "/tool-" + UUID().uuidString
        outputPath = stem + ".out"
        errorPath = stem + ".err"
        outputHandle = try System.openForAppending(outputPath)
        errorHandle = try System.openForAppending(errorPath)
        if let input {
            let path = stem + ".in"
            guard FileManager.default.createFile(atPath: path, contents: Data(input.utf8)),
                let handle = FileHandle(forReadingAtPath: path)
            else {
                throw PostgresTestServerError(.fileSystem, message: "Could not write the tool's input to \(path).")
            }
            inputPath = path
            inputHandle = handle
        } else {
            inputPath = nil
            inputHandle = nil
        }
    }

    func remove() {
        try? outputHandle.close()
        try? errorHandle.close()
        try? inputHandle?.close()
        for path in [outputPath, errorPath, inputPath].compactMap({ $0 }) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
