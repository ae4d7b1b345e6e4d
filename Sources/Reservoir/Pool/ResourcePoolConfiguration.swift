import CoreMetrics
import DequeModule
import Logging

/// Settings of a ``ResourcePool``.
///
/// A struct of `var`s with documented defaults: start from `ResourcePoolConfiguration()` (or with a name) and change
/// what you need. The pool validates the whole configuration when it is created and throws
/// ``ResourcePoolError/Code/invalidConfiguration`` naming the first field that is wrong.
public struct ResourcePoolConfiguration: Sendable, Equatable {
    /// The pool's name: the only dimension of its metrics and the `pool.name` of its logs. Default `"default"`.
    public var name: String

    /// Resources kept open even when idle: created when `run()` starts and after evictions. Default 0.
    public var minimumSize: Int

    /// Hard cap on resources, counting those being created and closed. Default 10.
    public var maximumSize: Int

    /// How many creations may run at once while creation is healthy (while it fails, one at a time). Default 2.
    public var maximumConcurrentCreations: Int

    /// How long an acquire waits when the call passes no timeout; `nil` waits until the task is cancelled.
    /// Default 30 seconds.
    public var acquireTimeout: Duration?

    /// Bound on queued waiters: when full, an acquire fails at once with ``ResourcePoolError/Code/tooManyWaiters``
    /// (load shedding). `nil` (the default) does not bound the queue.
    public var maximumWaiters: Int?

    /// An idle resource above `minimumSize` is closed after being idle this long; `nil` never shrinks.
    /// Default 10 minutes.
    public var idleTimeout: Duration?

    /// Resources are closed and replaced once they are this old (an in-use one when it comes back); `nil` keeps
    /// them forever. Default 30 minutes.
    public var maximumLifetime: Duration?

    /// Each resource's lifetime is shortened by a random share of `maximumLifetime` up to this fraction (0...1), so
    /// resources created together are not all replaced together. Default 0.1.
    public var maximumLifetimeJitter: Double

    /// Idle resources are checked with the keep-alive hook when they have not been used or checked for this long;
    /// `nil` (the default) never checks. Needs ``ResourcePoolHooks/keepAlive``.
    public var keepAliveInterval: Duration?

    /// When the before-lease hook runs. Default: when the resource was idle for at least 1 second (and always after
    /// ``ResourcePool/requestIdleValidation()``). Needs ``ResourcePoolHooks/beforeLease``.
    public var validation: ValidationPolicy

    /// A lease held longer than this is reported once (warning with its acquire site, a metric) and again when it
    /// comes back; `nil` (the default) does not report. Leases dropped without release are always reported.
    public var leakThreshold: Duration?

    /// Delays between failed creation attempts. Default: 100 ms doubling up to 10 s, ±20 % jitter.
    public var creationBackoff: Backoff

    /// After this many consecutive creation failures with no resource open, the circuit breaker opens: waiters fail
    /// at once with ``ResourcePoolError/Code/circuitBreakerOpen`` carrying the last creation error, until a creation
    /// succeeds. `nil` never opens it. Default 5.
    public var circuitBreakerThreshold: Int?

    /// How long a graceful shutdown waits for outstanding leases before forcing. Default 30 seconds.
    public var drainTimeout: Duration

    /// The window over which `statistics` computes rates, hold and wait times and the sizing advice. Default 60 s.
    public var statisticsWindow: Duration

    /// Extra capacity the sizing advice adds on top of the measured need (0.2 = 20 %). Default 0.2.
    public var sizingHeadroom: Double

    /// The concurrency past which the resource behind the pool (the database) stops gaining throughput, as measured
    /// by `reservoir advise`; `nil` when unknown. Default `nil`.
    ///
    /// The sizing advice uses it to tell a pool that is too small (callers wait and the database could serve more in
    /// parallel: ``SizingAdvice/Verdict/undersized``) from a database at its limit (callers wait, but more connections
    /// would not add throughput: ``SizingAdvice/Verdict/saturated``, shed load instead).
    public var throughputKnee: Int?

    /// Lets the pool find its own size: its effective maximum moves between `minimumSize` (at least 1) and
    /// `maximumSize`, following the throughput it observes (see ``SelfSizingPolicy``). `nil` (the default) keeps the
    /// maximum fixed at `maximumSize`, and acquire and release do no extra work.
    public var selfSizing: SelfSizingPolicy?

    /// Creates a configuration with the documented defaults.
    ///
    /// - Parameter name: the pool's name in metrics and logs.
    public init(name: String = "default") {
        self.name = name
        self.minimumSize = 0
        self.maximumSize = 10
        self.maximumConcurrentCreations = 2
        self.acquireTimeout = .seconds(30)
        self.maximumWaiters = nil
        self.idleTimeout = .seconds(600)
        self.maximumLifetime = .seconds(1800)
        self.maximumLifetimeJitter = 0.1
        self.keepAliveInterval = nil
        self.validation = .ifIdle(atLeast: .seconds(1))
        self.leakThreshold = nil
        self.creationBackoff = .exponential()
        self.circuitBreakerThreshold = 5
        self.drainTimeout = .seconds(30)
        self.statisticsWindow = .seconds(60)
        self.sizingHeadroom = 0.2
        self.throughputKnee = nil
        self.selfSizing = nil
    }
}

extension ResourcePoolConfiguration {
    /// When the before-lease validation hook runs.
    public struct ValidationPolicy: Sendable, Equatable, CustomStringConvertible {
        /// The idle time from which validation runs: zero for ``always``, `nil` for ``never``.
        public let idleThreshold: Duration?

        /// Validates before every lease.
        public static let always = ValidationPolicy(idleThreshold: .zero)

        /// Never validates on idle time (only after ``ResourcePool/requestIdleValidation()``).
        public static let never = ValidationPolicy(idleThreshold: nil)

        /// Validates when the resource has been idle at least this long: a resource used a moment ago is very
        /// likely still fine, and skipping the check keeps the hot path fast.
        ///
        /// - Parameter duration: the idle time from which validation runs.
        public static func ifIdle(atLeast duration: Duration) -> ValidationPolicy {
            ValidationPolicy(idleThreshold: duration)
        }

        public var description: String {
            switch self.idleThreshold {
            case .none: return "never"
            case .some(.zero): return "always"
            case .some(let threshold): return "ifIdle(atLeast: \(threshold))"
            }
        }
    }

    /// Delays between failed creation attempts: `min(initial × multiplier^(n − 1), maximum)` after the n-th
    /// consecutive failure, multiplied by a random factor in `1 − jitter ..< 1 + jitter`.
    public struct Backoff: Sendable, Equatable {
        /// The delay after the first failure.
        public var initial: Duration
        /// Growth per further failure (at least 1).
        public var multiplier: Double
        /// The largest delay.
        public var maximum: Duration
        /// The random spread, as a fraction in 0...1.
        public var jitter: Double

        /// Exponential backoff.
        ///
        /// - Parameters:
        ///   - initial: the delay after the first failure. Default 100 ms.
        ///   - multiplier: growth per failure, at least 1. Default 2.
        ///   - maximum: the cap. Default 10 s.
        ///   - jitter: the random spread as a fraction in 0...1. Default 0.2.
        public static func exponential(
            initial: Duration = .milliseconds(100),
            multiplier: Double = 2,
            maximum: Duration = .seconds(10),
            jitter: Double = 0.2
        ) -> Backoff {
            Backoff(initial: initial, multiplier: multiplier, maximum: maximum, jitter: jitter)
        }
    }
}

extension ResourcePoolConfiguration {
    /// Checks every field and translates the configuration for the state machine.
    ///
    /// - Parameters:
    ///   - hasKeepAliveHook: keep-alives are scheduled only when there is a hook to run.
    ///   - hasValidationHook: validation is requested only when there is a hook to run.
    /// - Throws: ``ResourcePoolError/Code/invalidConfiguration`` naming the field.
    func validated(hasKeepAliveHook: Bool, hasValidationHook: Bool) throws -> PoolStateMachine.Configuration {
        func invalid(_ field: String, _ problem: String) -> ResourcePoolError {
            ResourcePoolError(
                .invalidConfiguration,
                message: "ResourcePoolConfiguration.\(field) \(problem)",
                field: field
            )
        }
        func requirePositive(_ value: Duration?, _ field: String) throws {
            if let value, value <= .zero { throw invalid(field, "must be greater than zero (got \(value))") }
        }
        func requireFraction(_ value: Double, _ field: String) throws {
            guard value.isFinite, value >= 0, value <= 1 else {
                throw invalid(field, "must be between 0 and 1 (got \(value))")
            }
        }
        if self.name.isEmpty { throw invalid("name", "must not be empty") }
        if self.minimumSize < 0 { throw invalid("minimumSize", "must not be negative (got \(self.minimumSize))") }
        if self.maximumSize < 1 { throw invalid("maximumSize", "must be at least 1 (got \(self.maximumSize))") }
        if self.minimumSize > self.maximumSize {
            throw invalid(
                "minimumSize",
                "(\(self.minimumSize)) must not be above maximumSize (\(self.maximumSize))"
            )
        }
        if self.maximumConcurrentCreations < 1 {
            throw invalid("maximumConcurrentCreations", "must be at least 1 (got \(self.maximumConcurrentCreations))")
        }
        try requirePositive(self.acquireTimeout, "acquireTimeout")
        if let maximumWaiters = self.maximumWaiters, maximumWaiters < 0 {
            throw invalid("maximumWaiters", "must not be negative (got \(maximumWaiters))")
        }
        try requirePositive(self.idleTimeout, "idleTimeout")
        try requirePositive(self.maximumLifetime, "maximumLifetime")
        try requireFraction(self.maximumLifetimeJitter, "maximumLifetimeJitter")
        try requirePositive(self.keepAliveInterval, "keepAliveInterval")
        if let threshold = self.validation.idleThreshold, threshold < .zero {
            throw invalid("validation", "idle threshold must not be negative (got \(threshold))")
        }
        try requirePositive(self.leakThreshold, "leakThreshold")
        try requirePositive(self.creationBackoff.initial, "creationBackoff.initial")
        guard self.creationBackoff.multiplier.isFinite, self.creationBackoff.multiplier >= 1 else {
            throw invalid("creationBackoff.multiplier", "must be at least 1 (got \(self.creationBackoff.multiplier))")
        }
        if self.creationBackoff.maximum < self.creationBackoff.initial {
            throw invalid("creationBackoff.maximum", "must not be below creationBackoff.initial")
        }
        try requireFraction(self.creationBackoff.jitter, "creationBackoff.jitter")
        if let threshold = self.circuitBreakerThreshold, threshold < 1 {
            throw invalid("circuitBreakerThreshold", "must be at least 1 (got \(threshold))")
        }
        if self.drainTimeout < .zero {
            throw invalid("drainTimeout", "must not be negative (got \(self.drainTimeout))")
        }
        try requirePositive(self.statisticsWindow, "statisticsWindow")
        guard self.sizingHeadroom.isFinite, self.sizingHeadroom >= 0 else {
            throw invalid("sizingHeadroom", "must not be negative (got \(self.sizingHeadroom))")
        }
        if let problem = self.selfSizing?.problem(minimumSize: self.minimumSize, maximumSize: self.maximumSize) {
            throw invalid(problem.field, problem.message)
        }
        if let knee = self.throughputKnee, knee < 1 {
            throw invalid("throughputKnee", "must be at least 1 (got \(knee))")
        }
        return PoolStateMachine.Configuration(
            minimumSize: self.minimumSize,
            maximumSize: self.maximumSize,
            maximumConcurrentCreations: self.maximumConcurrentCreations,
            maximumWaiters: self.maximumWaiters,
            idleTimeout: self.idleTimeout,
            maximumLifetime: self.maximumLifetime,
            maximumLifetimeJitter: self.maximumLifetimeJitter,
            keepAliveInterval: hasKeepAliveHook ? self.keepAliveInterval : nil,
            validationIdleThreshold: hasValidationHook ? self.validation.idleThreshold : nil,
            leakThreshold: self.leakThreshold,
            backoffInitial: self.creationBackoff.initial,
            backoffMultiplier: self.creationBackoff.multiplier,
            backoffMaximum: self.creationBackoff.maximum,
            backoffJitter: self.creationBackoff.jitter,
            circuitBreakerThreshold: self.circuitBreakerThreshold
        )
    }
}
