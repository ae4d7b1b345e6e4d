import Synchronization

/// Lets a test wait until the pool's state changes, instead of yielding in a loop: the rendezvous behind the test
/// kit's `waitForStatistics(timeout:until:)` ("a waiter queued", "a resource came back", "a creation failed").
///
/// After every locked section that changed the pool's state, the task that held the lock calls ``stateChanged()``
/// once the lock is released. That costs one relaxed atomic load while nobody observes (the hot path's whole price,
/// measured with `bash Benchmarks/run pool`); only while a task waits in ``waitForChange(since:)`` does it take this
/// object's own lock and wake the waiting tasks, which then read the state again themselves.
///
/// Why no signal is lost: an observer raises ``observers`` before it reads the pool's state (under the pool's lock),
/// and a changer reads ``observers`` after it released that lock. So either the observer's read comes after the
/// change, or the changer's read comes after the observer's increment (the pool's lock orders them), and the changer
/// signals.
@usableFromInline
final class PoolObservation: Sendable {
    /// How many tasks are observing the pool; changers signal only when this is not zero.
    @usableFromInline let observers = Atomic<Int>(0)

    private struct State {
        /// Raised by every signal.
        var version: UInt64 = 0
        var nextWaiterID: UInt64 = 0
        var parked: [UInt64: UnsafeContinuation<Void, Never>] = [:]
        /// Waiters cancelled before they parked.
        var cancelled: Set<UInt64> = []
    }

    /// Protects the version and the parked waiters; no user code runs under it.
    private let state = Mutex<State>(State())

    init() {}

    /// Called by the pool after unlocking, when its state may have changed.
    @inlinable
    func stateChanged() {
        if self.observers.load(ordering: .relaxed) != 0 { self.signal() }
    }

    /// Raises the version and wakes every parked waiter.
    @usableFromInline
    func signal() {
        let parked = self.state.withLock { state in
            state.version &+= 1
            defer { state.parked.removeAll() }
            return state.parked
        }
        for continuation in parked.values { continuation.resume() }
    }

    /// The version now: pass it to ``waitForChange(since:)`` after reading the state it covers.
    var version: UInt64 {
        self.state.withLock { $0.version }
    }

    /// Returns once a signal came after `version` was read (at once if one already has), or the task is cancelled.
    func waitForChange(since version: UInt64) async {
        let id = self.state.withLock { state in
            defer { state.nextWaiterID &+= 1 }
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.version != version || state.cancelled.remove(id) != nil { return true }
                    state.parked[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let parked = self.state.withLock { state in
                guard let continuation = state.parked.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return UnsafeContinuation<Void, Never>?.none
                }
                return continuation
            }
            parked?.resume()
        }
    }
}

extension ResourcePool {
    /// Waits until `condition` holds for the pool's statistics, checking again after each change of the pool's state
    /// (never by polling or yielding): the rendezvous of the test kit's `waitForStatistics(timeout:until:)`.
    ///
    /// A condition that depends on time alone (not on a change of state) is checked only at the next change.
    ///
    /// - Returns: the statistics that satisfied the condition.
    /// - Throws: `CancellationError` when the task is cancelled first.
    package nonisolated func statistics(
        satisfying condition: (ResourcePoolStatistics) -> Bool
    ) async throws -> ResourcePoolStatistics {
        self.observation.observers.add(1, ordering: .relaxed)
        defer { self.observation.observers.subtract(1, ordering: .relaxed) }
        while true {
            let version = self.observation.version
            let statistics = self.statistics
            if condition(statistics) { return statistics }
            await self.observation.waitForChange(since: version)
            try Task.checkCancellation()
        }
    }
}
