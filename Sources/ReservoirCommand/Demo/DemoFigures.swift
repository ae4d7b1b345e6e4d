import Reservoir
import Synchronization

/// The workload's own figures, shared by the worker tasks and the view: acquire wait and hold time (over the last
/// two seconds and since the start), completions and failures.
final class DemoFigures: Sendable {
    struct State {
        var currentWait = LatencyHistogram()
        var previousWait = LatencyHistogram()
        var currentHold = LatencyHistogram()
        var previousHold = LatencyHistogram()
        var totalWait = LatencyHistogram()
        var totalHold = LatencyHistogram()
        var completed = 0
        var failed = 0
        var planted: [(what: String, at: ContinuousClock.Instant)] = []
    }

    private let state = Mutex(State())

    func recordWait(_ duration: Duration) {
        state.withLock { $0.currentWait.record(duration) }
    }

    func recordHold(_ duration: Duration) {
        state.withLock { $0.currentHold.record(duration) }
    }

    func recordCompletion() {
        state.withLock { $0.completed += 1 }
    }

    /// Notes a planted fault (a leak, a long hold), so that the sizing line can name it.
    func recordPlanted(_ what: String, at instant: ContinuousClock.Instant) {
        state.withLock { $0.planted.append((what, instant)) }
    }

    /// The planted faults since `instant`.
    func planted(since instant: ContinuousClock.Instant) -> [String] {
        state.withLock { state in state.planted.filter { $0.at >= instant }.map(\.what) }
    }

    func recordFailure() {
        state.withLock { $0.failed += 1 }
    }

    /// Moves the current second into "previous" and folds it into the totals; the live view shows the last two.
    func rotate() {
        state.withLock { state in
            state.totalWait.merge(state.currentWait)
            state.totalHold.merge(state.currentHold)
            state.previousWait = state.currentWait
            state.previousHold = state.currentHold
            state.currentWait = LatencyHistogram()
            state.currentHold = LatencyHistogram()
        }
    }

    /// Wait and hold histograms over the recent window, and the counters.
    func recent() -> (wait: LatencyHistogram, hold: LatencyHistogram, completed: Int, failed: Int) {
        state.withLock { state in
            var wait = state.previousWait
            wait.merge(state.currentWait)
            var hold = state.previousHold
            hold.merge(state.currentHold)
            return (wait, hold, state.completed, state.failed)
        }
    }

    /// Wait and hold histograms since the start.
    func totals() -> (wait: LatencyHistogram, hold: LatencyHistogram, completed: Int, failed: Int) {
        state.withLock { state in
            var wait = state.totalWait
            wait.merge(state.currentWait)
            var hold = state.totalHold
            hold.merge(state.currentHold)
            return (wait, hold, state.completed, state.failed)
        }
    }
}
