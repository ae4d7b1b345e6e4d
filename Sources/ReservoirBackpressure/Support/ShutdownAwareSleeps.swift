import Synchronization

/// The sleeps of a limiter's waiting callers, which the limiter's `shutdown()` ends at once.
///
/// A caller that must wait for its slot sleeps on the limiter's clock. The sleep runs in a task of its own, kept here,
/// so that `shutdown()` can cancel it: the caller then fails with `limiterShutDown` instead of being granted after
/// the limiter was shut down. Cancelling the caller's task cancels its sleep too. Only callers that actually wait pay
/// for the task; `tryAcquire` and calls that find permits ready never come here.
final class ShutdownAwareSleeps: Sendable {
    /// How a sleep ended.
    enum Outcome: Equatable {
        /// The deadline came.
        case slept
        /// The caller's task was cancelled.
        case cancelled
        /// The limiter was shut down (before or during the sleep).
        case shutDown
    }

    private struct State {
        var isShutDown = false
        var nextID: UInt64 = 0
        var sleeps: [UInt64: Task<Void, any Error>] = [:]
    }

    /// Protects the sleeps in progress and the shut-down flag.
    private let state = Mutex(State())

    /// Sleeps until `deadline` on `clock`, unless the caller is cancelled or the limiter shut down first.
    func sleep<C: Clock>(until deadline: C.Instant, on clock: C) async -> Outcome {
        let sleep = Task { try await clock.sleep(until: deadline, tolerance: nil) }
        let id: UInt64? = self.state.withLock { state in
            guard !state.isShutDown else { return nil }
            state.nextID &+= 1
            state.sleeps[state.nextID] = sleep
            return state.nextID
        }
        guard let id else {
            sleep.cancel()
            return .shutDown
        }
        let result = await withTaskCancellationHandler {
            await sleep.result
        } onCancel: {
            sleep.cancel()
        }
        let isShutDown = self.state.withLock { state in
            state.sleeps[id] = nil
            return state.isShutDown
        }
        switch result {
        case .success:
            return .slept
        case .failure:
            // Scenario: both happened (the caller was cancelled and the limiter shut down); shut down wins, since
            // the caller would fail on its next call anyway.
            return isShutDown ? .shutDown : .cancelled
        }
    }

    /// Marks the limiter shut down and ends every sleep in progress.
    func shutDown() {
        let sleeps = self.state.withLock { state in
            state.isShutDown = true
            let sleeps = state.sleeps
            state.sleeps = [:]
            return sleeps
        }
        for sleep in sleeps.values { sleep.cancel() }
    }
}
