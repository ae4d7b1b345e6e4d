import CoreMetrics
import Logging
import Synchronization

/// A rate limiter: a token bucket (GCRA) or a smoothly warming-up limiter, generic over its clock.
///
/// ```swift
/// let limiter = try RateLimiter(.tokenBucket(rate: 100, burst: 10))
/// if try limiter.tryAcquire() { /* go */ }
/// try await limiter.acquire(permits: 2)  // waits its turn, FIFO
/// ```
///
/// - ``tryAcquire(permits:)`` answers at once.
/// - ``acquire(permits:deadline:)`` waits its turn. Waiters are served in the order they called (each call reserves
///   its slot in the schedule, then sleeps until it). A cancelled waiter gives its reservation back. With a deadline
///   the call fails at once, without waiting, when its slot would come after the deadline.
/// - ``reserve(permits:)`` returns a ``Reservation`` that says when the permits are ready; ``refund(_:)`` gives them
///   back.
/// - ``setPolicy(_:)`` changes the rate at run time.
///
/// Tests inject a manual clock; nothing in the limiter sleeps except `acquire`, on the given clock.
public final class RateLimiter<C: Clock>: Sendable where C.Duration == Duration {
    /// Permits reserved for a time that may be in the future.
    public struct Reservation: Sendable {
        /// How many permits were reserved.
        public let permits: Int
        /// When the permits may be used.
        public let readyAt: C.Instant
        @usableFromInline let readyAtNanoseconds: Double
        @usableFromInline let cost: Double

        @inlinable
        init(permits: Int, readyAt: C.Instant, readyAtNanoseconds: Double, cost: Double) {
            self.permits = permits
            self.readyAt = readyAt
            self.readyAtNanoseconds = readyAtNanoseconds
            self.cost = cost
        }

        /// How long from `now` until the permits are ready (zero if they are ready).
        ///
        /// - Parameter now: The current instant of the limiter's clock.
        /// - Returns: The remaining delay.
        public func delay(from now: C.Instant) -> Duration {
            Swift.max(.zero, now.duration(to: readyAt))
        }
    }

    @usableFromInline let state: Mutex<RateLimiterStateMachine>
    @usableFromInline let clock: C
    @usableFromInline let origin: C.Instant
    @usableFromInline let metrics: LimiterMetrics
    /// The sleeps of callers waiting for their slot, ended by ``shutdown()``.
    let sleeps = ShutdownAwareSleeps()
    let logger: Logger?
    let label: String

    /// Creates a rate limiter.
    ///
    /// - Parameters:
    ///   - policy: How permits are spaced; see ``RateLimitPolicy``.
    ///   - clock: The clock to read and to sleep on.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where policy changes and shutdown are logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `rate`, `burst`, `warmupPeriod` or
    ///   `coldFactor`.
    public init(
        _ policy: RateLimitPolicy,
        clock: C,
        label: String = "rate_limiter",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        try policy.validate()
        self.logger = logger
        self.label = label
        self.clock = clock
        self.origin = clock.now
        self.state = Mutex(RateLimiterStateMachine(policy: policy, now: 0))
        self.metrics = LimiterMetrics(kind: "rate", label: label, factory: metricsFactory ?? MetricsSystem.factory)
    }

    @inlinable
    func nanoseconds(_ instant: C.Instant) -> Double { instant.nanoseconds(since: origin) }

    @inlinable
    func instant(_ nanoseconds: Double) -> C.Instant { origin.advanced(by: .nanosecondsDouble(nanoseconds)) }

    /// The current policy.
    public var policy: RateLimitPolicy { state.withLock { $0.policy } }

    /// Takes `permits` if they are available now, without waiting.
    ///
    /// - Parameter permits: How many permits; default 1.
    /// - Returns: `true` when the permits were taken.
    /// - Throws: ``BackpressureError/Code/invalidArgument`` (field `permits`) when `permits` is below 1,
    ///   ``BackpressureError/Code/permitsExceedCapacity`` when `permits` exceeds the burst (it could never
    ///   succeed), ``BackpressureError/Code/limiterShutDown`` after ``shutdown()``.
    @inlinable
    public func tryAcquire(permits: Int = 1) throws(BackpressureError) -> Bool {
        try tryAcquire(permits: permits, at: clock.now)
    }

    /// Takes `permits` if they are available at `instant`, without reading the clock.
    ///
    /// For callers that already hold a timestamp (a request's arrival time): reading the clock is most of the cost of
    /// ``tryAcquire(permits:)`` on some machines. Pass instants that do not go backwards by more than the burst
    /// interval; an instant in the past is treated as the moment it names.
    ///
    /// - Parameters:
    ///   - permits: How many permits; default 1.
    ///   - instant: The current time on the limiter's clock.
    /// - Returns: `true` when the permits were taken.
    /// - Throws: As ``tryAcquire(permits:)``.
    @inlinable
    public func tryAcquire(permits: Int = 1, at instant: C.Instant) throws(BackpressureError) -> Bool {
        guard permits >= 1 else { throw Self.invalidPermits(permits) }
        let now = nanoseconds(instant)
        let result = state.withLock { $0.reserve(permits: permits, now: now, maxWait: 0) }
        switch result {
        case .granted:
            metrics.granted.increment()
            return true
        case .wouldExceed:
            metrics.rejected.increment()
            return false
        case .tooMany(let limit):
            throw Self.tooMany(permits, limit)
        case .shutDown:
            throw Self.shutDownError()
        }
    }

    /// Waits until `permits` are available and takes them. Waiters are served in FIFO order.
    ///
    /// If the task is cancelled while waiting, the reservation is given back and the call throws.
    ///
    /// - Parameters:
    ///   - permits: How many permits; default 1.
    ///   - deadline: If the permits would be ready only after this instant, fail at once without waiting.
    /// - Throws: ``BackpressureError/Code/deadlineExceeded`` (at once, nothing reserved),
    ///   ``BackpressureError/Code/cancelled``, ``BackpressureError/Code/permitsExceedCapacity``,
    ///   ``BackpressureError/Code/limiterShutDown`` (also when ``shutdown()`` comes while waiting).
    public func acquire(permits: Int = 1, deadline: C.Instant? = nil) async throws(BackpressureError) {
        guard permits >= 1 else { throw Self.invalidPermits(permits) }
        let now = nanoseconds(clock.now)
        let maxWait = deadline.map { nanoseconds($0) - now }
        let result = state.withLock { $0.reserve(permits: permits, now: now, maxWait: maxWait) }
        switch result {
        case .granted(let readyAt, let cost):
            metrics.granted.increment()
            guard readyAt > now else { return }
            switch await sleeps.sleep(until: instant(readyAt), on: clock) {
            case .slept:
                metrics.waited.recordNanoseconds(Int64(readyAt - now))
            case .cancelled:
                let cancelledAt = nanoseconds(clock.now)
                state.withLock { $0.refunded(readyAt: readyAt, cost: cost, now: cancelledAt) }
                throw BackpressureError(
                    .cancelled, message: "The task was cancelled while it waited for the rate limiter.")
            case .shutDown:
                throw Self.shutDownError()
            }
        case .wouldExceed(let readyAt):
            metrics.rejected.increment()
            throw BackpressureError(
                .deadlineExceeded,
                message:
                    "The permits would be ready in \(Duration.nanosecondsDouble(readyAt - now)), after the deadline."
            )
        case .tooMany(let limit):
            throw Self.tooMany(permits, limit)
        case .shutDown:
            throw Self.shutDownError()
        }
    }

    /// Waits at most `timeout` for `permits`; fails at once when they would take longer.
    ///
    /// - Parameters:
    ///   - permits: How many permits; default 1.
    ///   - timeout: The longest acceptable wait.
    /// - Throws: As ``acquire(permits:deadline:)``.
    public func acquire(permits: Int = 1, timeout: Duration) async throws(BackpressureError) {
        try await acquire(permits: permits, deadline: clock.now.advanced(by: timeout))
    }

    /// Reserves `permits` now for the earliest time they can be used, without waiting.
    ///
    /// Use the permits at ``Reservation/readyAt`` (sleep on your clock until then), or give them back with
    /// ``refund(_:)``.
    ///
    /// - Parameter permits: How many permits; default 1.
    /// - Returns: The reservation.
    /// - Throws: ``BackpressureError/Code/permitsExceedCapacity``, ``BackpressureError/Code/limiterShutDown``.
    public func reserve(permits: Int = 1) throws(BackpressureError) -> Reservation {
        guard permits >= 1 else { throw Self.invalidPermits(permits) }
        let now = nanoseconds(clock.now)
        switch state.withLock({ $0.reserve(permits: permits, now: now, maxWait: nil) }) {
        case .granted(let readyAt, let cost):
            metrics.granted.increment()
            return Reservation(permits: permits, readyAt: instant(readyAt), readyAtNanoseconds: readyAt, cost: cost)
        case .wouldExceed:
            preconditionFailure("a reservation without a maximum wait always succeeds")
        case .tooMany(let limit):
            throw Self.tooMany(permits, limit)
        case .shutDown:
            throw Self.shutDownError()
        }
    }

    /// Gives a reservation back so that later callers can use its permits.
    ///
    /// Does nothing once the reservation's time has passed: by then its permits count as used.
    ///
    /// - Parameter reservation: A reservation from this limiter.
    public func refund(_ reservation: Reservation) {
        let now = nanoseconds(clock.now)
        state.withLock { $0.refunded(readyAt: reservation.readyAtNanoseconds, cost: reservation.cost, now: now) }
    }

    /// Changes the policy at run time.
    ///
    /// Permits already owed are carried over to the new rate; reservations already granted keep their times.
    ///
    /// - Parameter policy: The new policy.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public func setPolicy(_ policy: RateLimitPolicy) throws(BackpressureError) {
        try policy.validate()
        let now = nanoseconds(clock.now)
        state.withLock { $0.policyChanged(to: policy, now: now) }
        logger?.debug("Rate limit changed", metadata: [LogKey.limiter: "\(label)", LogKey.policy: "\(policy)"])
    }

    /// Changes the rate, keeping the kind of policy and its other settings.
    ///
    /// - Parameter rate: The new rate in permits per second.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `rate`.
    public func setRate(_ rate: Double) throws(BackpressureError) {
        let policy = self.policy
        switch policy.base {
        case .tokenBucket(_, let burst):
            try setPolicy(.tokenBucket(rate: rate, burst: burst))
        case .smoothWarmingUp(_, let warmupPeriod, let coldFactor):
            try setPolicy(.smoothWarmingUp(rate: rate, warmupPeriod: warmupPeriod, coldFactor: coldFactor))
        }
    }

    /// Permits that could be taken now without waiting.
    public var availablePermits: Double {
        let now = nanoseconds(clock.now)
        return state.withLock { $0.availablePermits(now: now) }
    }

    /// Stops granting: every later call throws ``BackpressureError/Code/limiterShutDown``, and so do the callers of
    /// ``acquire(permits:deadline:)`` still waiting for their slot, at once.
    public func shutdown() {
        state.withLock { $0.shutDown() }
        sleeps.shutDown()
        logger?.debug("Rate limiter shut down", metadata: [LogKey.limiter: "\(label)"])
    }

    /// The error for a permit count below 1, which would otherwise corrupt the count (negative permits add room).
    @usableFromInline
    static func invalidPermits(_ permits: Int) -> BackpressureError {
        BackpressureError(
            .invalidArgument, message: "Asked for \(permits) permits; ask for at least 1.", field: "permits")
    }

    @usableFromInline
    static func tooMany(_ permits: Int, _ limit: Int) -> BackpressureError {
        BackpressureError(
            .permitsExceedCapacity,
            message: "Asked for \(permits) permits, but the limiter can never grant more than \(limit) at once."
        )
    }

    @usableFromInline
    static func shutDownError() -> BackpressureError {
        BackpressureError(.limiterShutDown, message: "The limiter was shut down.")
    }
}

extension RateLimiter where C == ContinuousClock {
    /// Creates a rate limiter on the continuous clock.
    ///
    /// - Parameters:
    ///   - policy: How permits are spaced.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where policy changes and shutdown are logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public convenience init(
        _ policy: RateLimitPolicy,
        label: String = "rate_limiter",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        try self.init(policy, clock: ContinuousClock(), label: label, metricsFactory: metricsFactory, logger: logger)
    }
}
