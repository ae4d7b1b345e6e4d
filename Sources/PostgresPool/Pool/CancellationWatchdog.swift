import Synchronization

/// Bounds how long a cancelled statement may take to stop on the server.
///
/// The driver answers a task's cancellation by sending a cancel request and waiting until the connection is idle
/// again; that wait has no bound of its own (a frozen backend or a partitioned network never answers). The
/// watchdog is armed from the task's cancellation handler: after the grace period it closes the connection,
/// which fails the statement at once and keeps the connection from ever being handed on.
///
/// Races, in order of the numbered scenarios:
/// 1. The statement stops within the grace period: `finish()` cancels the sleeping task before it fires.
/// 2. The grace period ends first: the task moves `armed` to `fired` under the lock, then closes the connection;
///    a `finish()` that comes later sees `fired` and reports it.
/// 3. The statement finished before the task was cancelled: `finish()` moved `running` to `finished`, and a late
///    `arm` does nothing.
final class CancellationWatchdog: Sendable {
    enum Outcome {
        /// The task was not cancelled while the work ran.
        case notCancelled
        /// The task was cancelled and the work ended within the grace period.
        case stoppedInTime
        /// The grace period ended first: the connection was closed.
        case fired
    }

    private enum State {
        case running
        case armed(Task<Void, Never>)
        case fired
        case finished
    }

    private let state = Mutex(State.running)

    init() {}

    /// Starts the grace period; called from a cancellation handler (synchronous, any thread).
    func arm(connection: PostgresConnection, gracePeriod: Duration) {
        state.withLock { state in
            guard case .running = state else { return }
            state = .armed(
                Task {
                    do {
                        try await Task.sleep(for: gracePeriod)
                    } catch {
                        return  // finish() came first.
                    }
                    guard self.fire() else { return }
                    await connection.close()
                })
        }
    }

    private func fire() -> Bool {
        state.withLock { state in
            guard case .armed = state else { return false }
            state = .fired
            return true
        }
    }

    /// Ends the watch once the work has returned or thrown.
    ///
    /// - Returns: what happened.
    func finish() -> Outcome {
        state.withLock { state in
            switch state {
            case .running:
                state = .finished
                return .notCancelled
            case .armed(let task):
                task.cancel()
                state = .finished
                return .stoppedInTime
            case .fired:
                return .fired
            case .finished:
                return .notCancelled
            }
        }
    }
}
