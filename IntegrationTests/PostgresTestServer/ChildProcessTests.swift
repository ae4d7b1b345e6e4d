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
        let child = try await ChildProcess.spawn(
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
