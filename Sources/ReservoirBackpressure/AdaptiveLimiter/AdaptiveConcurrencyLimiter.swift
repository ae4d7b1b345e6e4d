import CoreMetrics
import Logging

/// A concurrency limiter that finds its limit from what it observes.
///
/// ```swift
/// let limiter = try AdaptiveConcurrencyLimiter(.gradient(initialLimit: 20, maxLimit: 200))
/// let rows = try await limiter.withPermit { try await database.query(sql) }
/// ```
///
/// The latency of each operation (the time its permit was held) feeds an algorithm chosen by
/// ``AdaptiveLimitPolicy``: AIMD, a latency gradient, or — with ``recordPoolWait(_:)`` — the acquire-wait time of
/// the resource pool behind it. Everything else works as ``ConcurrencyLimiter``: FIFO queue, timeouts, shedding.
///
/// Metrics: `backpressure.limiter.limit`, `.in_flight`, `.rejected` (drops) and `.latency_estimate`, with
/// `kind=adaptive`.
public final class AdaptiveConcurrencyLimiter<C: Clock>: Sendable where C.Duration == Duration {
    /// The limiter that does the admitting; its limit is moved by the algorithm.
    public let limiter: ConcurrencyLimiter<C>
    /// The policy.
    public let policy: AdaptiveLimitPolicy

    /// Creates an adaptive limiter.
    ///
    /// - Parameters:
    ///   - policy: The algorithm and its bounds.
    ///   - maxQueueLength: The most callers waiting; default 1024.
    ///   - clock: The clock for latencies, timeouts and deadlines.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where limit changes and shutdown are logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public init(
        _ policy: AdaptiveLimitPolicy,
        maxQueueLength: Int = 1024,
        clock: C,
        label: String = "adaptive",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        try policy.validate()
        guard maxQueueLength >= 0 else {
            throw .invalid("maxQueueLength", "The queue length must be at least 0, got \(maxQueueLength).")
        }
        self.policy = policy
        self.limiter = ConcurrencyLimiter(
            machine: ConcurrencyLimiterStateMachine(limit: policy.initialLimit, maxQueueLength: maxQueueLength),
            adaptive: AdaptiveLimitStateMachine(policy: policy),
            clock: clock,
            kind: "adaptive",
            label: label,
            metricsFactory: metricsFactory,
            logger: logger
        )
    }

    /// The current limit.
    public var limit: Int { limiter.statistics.limit }

    /// A snapshot: limit, in flight, waiting, latency estimate.
    public var statistics: ConcurrencyLimiter<C>.Statistics { limiter.statistics }

    /// Waits for a slot; see ``ConcurrencyLimiter/acquire(timeout:deadline:)``.
    ///
    /// - Parameters:
    ///   - timeout: The longest wait in the queue.
    ///   - deadline: Shed at once when the predicted queueing time ends after it.
    /// - Returns: The permit; release it with the operation's ``LimiterOutcome``.
    /// - Throws: As ``ConcurrencyLimiter/acquire(timeout:deadline:)``.
    public func acquire(
        timeout: Duration? = nil,
        deadline: C.Instant? = nil
    ) async throws(BackpressureError) -> ConcurrencyLimiter<C>.Permit {
        try await limiter.acquire(timeout: timeout, deadline: deadline)
    }

    /// Runs `body` holding a slot; its latency is a sample. See ``ConcurrencyLimiter/withPermit(timeout:deadline:isolation:_:)``.
    ///
    /// - Parameters:
    ///   - timeout: The longest wait in the queue.
    ///   - deadline: Shed at once when the predicted queueing time ends after it.
    ///   - isolation: The caller's isolation; `body` runs there.
    ///   - body: The operation.
    /// - Returns: What `body` returns.
    /// - Throws: The limiter's ``BackpressureError`` or what `body` throws.
    public func withPermit<T>(
        timeout: Duration? = nil,
        deadline: C.Instant? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async throws -> T {
        try await limiter.withPermit(timeout: timeout, deadline: deadline, isolation: isolation, body)
    }

    /// Reports how long an acquire on the resource pool behind this limiter waited.
    ///
    /// Only the ``AdaptiveLimitPolicy/poolWaitTime(target:initialLimit:minLimit:maxLimit:backoffRatio:windowSize:)``
    /// policy learns from it; other policies ignore it. Call it once per pool acquire, from any task.
    ///
    /// - Parameter wait: The time the pool acquire waited.
    public func recordPoolWait(_ wait: Duration) {
        limiter.poolWaitRecorded(wait)
    }

    /// Stops the limiter; see ``ConcurrencyLimiter/shutdown()``.
    public func shutdown() { limiter.shutdown() }
}

extension AdaptiveConcurrencyLimiter where C == ContinuousClock {
    /// Creates an adaptive limiter on the continuous clock.
    ///
    /// - Parameters:
    ///   - policy: The algorithm and its bounds.
    ///   - maxQueueLength: The most callers waiting; default 1024.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where limit changes and shutdown are logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public convenience init(
        _ policy: AdaptiveLimitPolicy,
        maxQueueLength: Int = 1024,
        label: String = "adaptive",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        try self.init(
            policy,
            maxQueueLength: maxQueueLength,
            clock: ContinuousClock(),
            label: label,
            metricsFactory: metricsFactory,
            logger: logger
        )
    }
}
