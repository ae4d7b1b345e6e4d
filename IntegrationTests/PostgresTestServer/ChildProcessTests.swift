import Foundation
import Synchronization
import Testing

@testable import ReservoirPostgresTestKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

@Suite("ChildProcess")
struct ChildProcessTests {
    // Scenario: a shutdown's 1-second bound once took a minute in the full suite. The wait's timer must not need a
    // thread of the cooperative pool, which a busy suite may hold: here every one of them is blocked while the wait
    // runs on a thread of its own, and the wait must still end at its timeout. The blockers are released when the
    // wait returned, or after 20 s if it never does (then the test fails).
    @Test("a wait with a timeout ends on time while every thread of the cooperative pool is blocked")
    func timeoutWithoutCooperativeThreads() async throws {
        let child = try ChildProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: [:], workingDirectory: "/")
        defer {
            child.send(signal: SIGKILL)
        }
        let executor = ThreadExecutor()
        defer { executor.stop() }

        let width = ProcessInfo.processInfo.activeProcessorCount
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let released = Atomic<Bool>(false)
        let releaseAll: @Sendable () -> Void = {
            if !released.exchange(true, ordering: .acquiringAndReleasing) {
                for _ in 0..<width { release.signal() }
            }
        }
        let (timedOut, blockedThroughout) = await withTaskExecutorPreference(executor) {
            () async -> (Bool, Bool) in
            for _ in 0..<width {
                Task.detached {
                    started.signal()
                    release.wait()
                }
            }
            let bound = DispatchWorkItem { releaseAll() }
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(20), execute: bound)
            // On the executor's own thread, which nothing else needs now; bounded, in case the pool has fewer threads
            // than processors (the blockers that got none would never start).
            for _ in 0..<width {
                if started.wait(timeout: .now() + .seconds(10)) == .timedOut {
                    bound.cancel()
                    releaseAll()
                    Issue.record("fewer than \(width) cooperative threads picked up a blocker within 10 s")
                    return (false, false)
                }
            }
            let termination = await child.waitForExit(timeout: .milliseconds(200))
            let stillBlocked = !released.load(ordering: .acquiring)
            bound.cancel()
            releaseAll()
            return (termination == nil, stillBlocked)
        }
        #expect(timedOut)
        #expect(blockedThroughout, "the wait only ended once the cooperative pool was released")
        #expect(child.isRunning)
    }

    // Scenario: Foundation's `Process` saw a child's exit only when a socket it had handed the child was closed by
    // every holder; a process the child left behind (or another child spawned at that moment) held it, and a suite's
    // `openssl` wait lasted the whole run. The exit must be seen by its process id, whatever the child left behind.
    @Test("a child's exit is seen at once while a process it left behind holds everything it inherited")
    func exitSeenDespiteBackgroundProcess() async throws {
        let folder = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let child = try ChildProcess.spawn(
            executable: "/bin/sh",
            arguments: ["-c", "sleep 30 & echo $! > background.pid; exit 3"],
            environment: ["PATH": "/usr/bin:/bin"],
            workingDirectory: folder
        )
        let termination = await child.waitForExit(timeout: .seconds(10))
        let background = try #require(
            Int32(
                String(contentsOfFile: folder + "/background.pid", encoding: .utf8).trimmingCharacters(
                    in: .whitespacesAndNewlines)))
        defer { kill(background, SIGKILL) }
        #expect(termination == ProcessTermination(status: 3, killedBySignal: false))
        #expect(kill(background, 0) == 0, "the background process was still running when the exit was seen")
    }

    @Test("a child inherits only its three standard descriptors and no blocked signal")
    func childInheritsNothingElse() async throws {
        // A descriptor this process holds without close-on-exec: a plain spawn would pass it on.
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { for end in ends { close(end) } }
        let child = try ChildProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: [:], workingDirectory: "/")
        defer { child.send(signal: SIGKILL) }
        // posix_spawn returns once the program runs, so /proc shows the new image's descriptors.
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd")
            .compactMap { Int32($0) }.sorted()
        #expect(descriptors == [0, 1, 2])
        let status = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        let blocked = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
        #expect(blocked?.split(separator: "\t").last == "0000000000000000", "\(blocked ?? "no SigBlk line")")
    }

    @Test("a child ended by a signal reports the signal, and a reaped child is not signalled")
    func signalledChild() async throws {
        let child = try ChildProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: [:], workingDirectory: "/")
        #expect(child.send(signal: SIGTERM))
        let termination = await child.waitForExit(timeout: .seconds(10))
        #expect(termination == ProcessTermination(status: SIGTERM, killedBySignal: true))
        #expect(!child.isRunning)
        #expect(!child.send(signal: SIGTERM))
    }

    @Test("a program that cannot be started is a typed error naming it")
    func unstartable() throws {
        #expect {
            try ChildProcess.spawn(
                executable: "/nonexistent/reservoir-tool", arguments: [], environment: [:], workingDirectory: "/")
        } throws: { error in
            (error as? Spawn.Failure)?.code == ENOENT
                && "\(error)".contains("/nonexistent/reservoir-tool")
        }
        #expect {
            try ChildProcess.spawn(
                executable: "/bin/true", arguments: [], environment: [:], workingDirectory: "/nonexistent-folder")
        } throws: { error in
            (error as? Spawn.Failure)?.code == ENOENT
        }
    }

    @Test("a run collects what the program wrote to stdout and stderr, and its input")
    func runCollectsOutput() async throws {
        let folder = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = try await ChildProcess.run(
            executable: "/bin/sh",
            arguments: ["-c", "read line; echo \"out $line\"; echo err >&2; exit 7"],
            environment: ["PATH": "/usr/bin:/bin"],
            workingDirectory: folder,
            input: "hello\n",
            scratchDirectory: folder
        )
        #expect(output.termination == ProcessTermination(status: 7, killedBySignal: false))
        #expect(output.standardOutput == "out hello\n")
        #expect(output.standardError == "err\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty, "the output files are removed")
    }

    private func makeFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }
}

/// A task executor with one thread of its own.
private final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    init() {
        let thread = Thread { [self] in run() }
        thread.name = "ChildProcessTests executor"
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
