import Synchronization

/// A clock that moves only when a test says so.
///
/// `sleep(until:)` registers a sleeper and suspends; ``advance(by:)`` moves time forward and resumes every sleeper
/// whose deadline has come, in deadline order. ``nextSleep()`` waits until the code under test registers its next
/// sleep, so a test can rendezvous with a timer instead of sleeping for real. Cancelling a sleeping task removes its
/// sleeper and throws `CancellationError`, as `ContinuousClock` does.
public final class ManualClock: Clock, Sendable {
    /// A point on the manual clock's time line: the duration since the clock was created.
    public struct Instant: InstantProtocol, CustomStringConvertible {
        /// The duration since the clock was created.
        public var offset: Duration

        /// Creates an instant.
        public init(offset: Duration) {
            self.offset = offset
        }

        /// The instant `duration` later.
        public func advanced(by duration: Duration) -> Instant {
            Instant(offset: self.offset + duration)
        }

        /// The duration from this instant to `other`.
        public func duration(to other: Instant) -> Duration {
            other.offset - self.offset
        }

        /// Whether `lhs` comes before `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool {
            lhs.offset < rhs.offset
        }

        public var description: String { "t+\(self.offset)" }
    }

    private struct Sleeper {
        var id: UInt64
        var deadline: Instant
        var continuation: UnsafeContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        /// Sleeps registered but not yet returned by `nextSleep()`, oldest first.
        var unobservedSleeps: [Instant] = []
        var sleepObservers: [UnsafeContinuation<Instant, Never>] = []
        /// Sleeps cancelled before their sleeper was registered.
        var cancelledEarly: Set<UInt64> = []
        /// Callers of `waitForSleepers(_:)`, with the count each waits for.
        var sleeperWatchers: [(count: Int, continuation: UnsafeContinuation<Void, Never>)] = []

        /// Removes and returns the watchers whose count the registered sleepers have reached.
        mutating func takeSatisfiedWatchers() -> [UnsafeContinuation<Void, Never>] {
            guard !self.sleeperWatchers.isEmpty else { return [] }
            let count = self.sleepers.count
            let satisfied = self.sleeperWatchers.filter { $0.count <= count }.map(\.continuation)
            self.sleeperWatchers.removeAll { $0.count <= count }
            return satisfied
        }
    }

    /// Protects everything the clock knows.
    private let state = Mutex<State>(State())

    /// Creates a clock at `t+0`.
    public init() {}

    /// The current instant.
    public var now: Instant {
        self.state.withLock { $0.now }
    }

    /// One nanosecond.
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// The deadlines of the sleepers currently registered, earliest first.
    public var pendingSleeps: [Instant] {
        self.state.withLock { $0.sleepers.map(\.deadline).sorted() }
    }

    /// How many tasks are sleeping on this clock now.
    public var sleeperCount: Int {
        self.state.withLock { $0.sleepers.count }
    }

    /// Waits until at least `count` tasks are sleeping on this clock at once (returns at once if they already are).
    ///
    /// Use it when the code under test sleeps in several tasks and the test must know that all of them are waiting
    /// before it moves the clock; ``nextSleep()`` observes sleeps one at a time instead.
    public func waitForSleepers(_ count: Int) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let ready = self.state.withLock { state in
                if state.sleepers.count >= count { return true }
                state.sleeperWatchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Suspends until the clock has been advanced to `deadline` (at once if it already has).
    ///
    /// - Throws: `CancellationError` when the task is cancelled while sleeping.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let (resumeNow, observer, cancelled, watchers):
                    (Bool, UnsafeContinuation<Instant, Never>?, Bool, [UnsafeContinuation<Void, Never>]) =
                    self.state.withLock { state in
                        if state.cancelledEarly.remove(id) != nil { return (false, nil, true, []) }
                        var observer: UnsafeContinuation<Instant, Never>?
                        if state.sleepObservers.isEmpty {
                            state.unobservedSleeps.append(deadline)
                        } else {
                            observer = state.sleepObservers.removeFirst()
                        }
                        if deadline <= state.now { return (true, observer, false, []) }
                        state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                        return (false, observer, false, state.takeSatisfiedWatchers())
                    }
                observer?.resume(returning: deadline)
                for watcher in watchers { watcher.resume() }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else if resumeNow {
                    continuation.resume()
                }
            }
        } onCancel: {
            let continuation: UnsafeContinuation<Void, any Error>? = self.state.withLock { state in
                if let index = state.sleepers.firstIndex(where: { $0.id == id }) {
                    return state.sleepers.remove(at: index).continuation
                }
                state.cancelledEarly.insert(id)
                return nil
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and resumes every sleeper whose deadline has come, earliest first.
    ///
    /// - Parameter duration: how far to move; must not be negative.
    public func advance(by duration: Duration) {
        let due: [Sleeper] = self.state.withLock { state in
            state.now = state.now.advanced(by: max(duration, .zero))
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due {
            sleeper.continuation.resume()
        }
    }

    /// Moves time to `instant` (if it is later than now) and resumes the sleepers that are due.
    public func advance(to instant: Instant) {
        let delta = self.now.duration(to: instant)
        self.advance(by: max(delta, .zero))
    }

    /// Waits until the code under test registers a sleep, and returns its deadline.
    ///
    /// Each registered sleep is returned once, in registration order; a sleep registered before this call and not
    /// yet returned is returned at once.
    @discardableResult
    public func nextSleep() async -> Instant {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Instant, Never>) in
            let ready: Instant? = self.state.withLock { state in
                if !state.unobservedSleeps.isEmpty { return state.unobservedSleeps.removeFirst() }
                state.sleepObservers.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Waits for registered sleeps until one has a deadline at or before `instant`, and returns it. Sleeps with later
    /// deadlines (other timers) are skipped.
    @discardableResult
    public func nextSleep(until instant: Instant) async -> Instant {
        while true {
            let deadline = await self.nextSleep()
            if deadline <= instant { return deadline }
        }
    }
}
