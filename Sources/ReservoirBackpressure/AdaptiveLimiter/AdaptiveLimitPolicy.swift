/// How an ``AdaptiveConcurrencyLimiter`` moves its limit. A struct with static factories.
public struct AdaptiveLimitPolicy: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Base: Hashable, Sendable {
        case aimd(latencyThreshold: Duration, backoffRatio: Double)
        case gradient(tolerance: Double, smoothing: Double, windowSize: Int)
        case poolWaitTime(target: Duration, backoffRatio: Double, windowSize: Int)
    }

    @usableFromInline let base: Base
    /// The limit to start with.
    public var initialLimit: Int
    /// The limit never goes below this.
    public var minLimit: Int
    /// The limit never goes above this.
    public var maxLimit: Int

    init(_ base: Base, initialLimit: Int, minLimit: Int, maxLimit: Int) {
        self.base = base
        self.initialLimit = initialLimit
        self.minLimit = minLimit
        self.maxLimit = maxLimit
    }

    /// Additive increase, multiplicative decrease (as Netflix's `AIMDLimit`).
    ///
    /// Each sample slower than `latencyThreshold`, or dropped, multiplies the limit by `backoffRatio`; each other
    /// sample adds 1 — but only while at least half the limit is in use, so an idle service does not inflate its limit.
    ///
    /// - Parameters:
    ///   - initialLimit: The starting limit; default 20.
    ///   - minLimit: The floor; default 1.
    ///   - maxLimit: The ceiling; default 1000.
    ///   - latencyThreshold: Latency above which a sample counts as overload.
    ///   - backoffRatio: The multiplier on overload, in 0.5..<1; default 0.9.
    /// - Returns: The policy; validated when the limiter is created.
    public static func aimd(
        initialLimit: Int = 20,
        minLimit: Int = 1,
        maxLimit: Int = 1000,
        latencyThreshold: Duration,
        backoffRatio: Double = 0.9
    ) -> AdaptiveLimitPolicy {
        AdaptiveLimitPolicy(
            .aimd(latencyThreshold: latencyThreshold, backoffRatio: backoffRatio),
            initialLimit: initialLimit,
            minLimit: minLimit,
            maxLimit: maxLimit
        )
    }

    /// A gradient on latency (in the manner of Netflix's Gradient2 and Envoy's adaptive concurrency).
    ///
    /// Every `windowSize` samples the limiter compares the window's mean latency with its no-load baseline (the
    /// fastest sample seen):
    /// `gradient = clamp(tolerance · baseline / mean, 0.5, 1)`. Below 1 (queueing) the limit shrinks by the
    /// gradient; at 1 it grows by √limit, but only if the window used at least half the limit. Drift guards:
    /// - the limit never grows while latency is above `tolerance × baseline`, nor while the limit is not used
    ///   (Gradient2 grows without bound at a gradient of ~0.8 because it adds queue headroom regardless);
    /// - the baseline falls at once to a faster window but rises only from windows that ran at under half the limit,
    ///   so sustained overload cannot drag it up (Vegas' `rtt_noload` creep), and no periodic "probe" windows shed
    ///   traffic to re-measure it (Envoy's minRTT windows).
    ///
    /// - Parameters:
    ///   - initialLimit: The starting limit; default 20.
    ///   - minLimit: The floor; default 1.
    ///   - maxLimit: The ceiling; default 1000.
    ///   - tolerance: How much slower than the baseline still counts as no queueing; at least 1, default 1.5.
    ///   - smoothing: How far each window moves the limit toward its target, in (0, 1]; default 0.5.
    ///   - windowSize: Samples per window; at least 1, default 20.
    /// - Returns: The policy; validated when the limiter is created.
    public static func gradient(
        initialLimit: Int = 20,
        minLimit: Int = 1,
        maxLimit: Int = 1000,
        tolerance: Double = 1.5,
        smoothing: Double = 0.5,
        windowSize: Int = 20
    ) -> AdaptiveLimitPolicy {
        AdaptiveLimitPolicy(
            .gradient(tolerance: tolerance, smoothing: smoothing, windowSize: windowSize),
            initialLimit: initialLimit,
            minLimit: minLimit,
            maxLimit: maxLimit
        )
    }

    /// Uses a resource pool's acquire-wait time as the signal, reported with
    /// ``AdaptiveConcurrencyLimiter/recordPoolWait(_:)``.
    ///
    /// A pool's wait time measures queueing directly (its no-load value is zero), so there is no baseline to drift:
    /// every `windowSize` waits, if their mean exceeds `target` the limit shrinks by `max(backoffRatio, target/mean)`;
    /// otherwise it grows by 1 while at least half the limit is in use.
    ///
    /// - Parameters:
    ///   - target: The acceptable mean wait for the pool.
    ///   - initialLimit: The starting limit; default 20.
    ///   - minLimit: The floor; default 1.
    ///   - maxLimit: The ceiling; default 1000.
    ///   - backoffRatio: The smallest multiplier on a bad window, in 0.5..<1; default 0.5.
    ///   - windowSize: Waits per window; at least 1, default 20.
    /// - Returns: The policy; validated when the limiter is created.
    public static func poolWaitTime(
        target: Duration,
        initialLimit: Int = 20,
        minLimit: Int = 1,
        maxLimit: Int = 1000,
        backoffRatio: Double = 0.5,
        windowSize: Int = 20
    ) -> AdaptiveLimitPolicy {
        AdaptiveLimitPolicy(
            .poolWaitTime(target: target, backoffRatio: backoffRatio, windowSize: windowSize),
            initialLimit: initialLimit,
            minLimit: minLimit,
            maxLimit: maxLimit
        )
    }

    public var description: String {
        switch base {
        case .aimd(let threshold, let ratio): "aimd(latencyThreshold: \(threshold), backoffRatio: \(ratio))"
        case .gradient(let tolerance, let smoothing, let window):
            "gradient(tolerance: \(tolerance), smoothing: \(smoothing), windowSize: \(window))"
        case .poolWaitTime(let target, let ratio, let window):
            "poolWaitTime(target: \(target), backoffRatio: \(ratio), windowSize: \(window))"
        }
    }

    func validate() throws(BackpressureError) {
        guard minLimit >= 1 else {
            throw .invalid("minLimit", "The minimum limit must be at least 1, got \(minLimit).")
        }
        guard maxLimit >= minLimit else {
            throw .invalid("maxLimit", "The maximum limit (\(maxLimit)) must be at least the minimum (\(minLimit)).")
        }
        guard (minLimit...maxLimit).contains(initialLimit) else {
            throw .invalid("initialLimit", "The initial limit must be within \(minLimit)...\(maxLimit).")
        }
        switch base {
        case .aimd(let threshold, let ratio):
            guard threshold > .zero else {
                throw .invalid("latencyThreshold", "The latency threshold must be above zero.")
            }
            guard ratio >= 0.5, ratio < 1 else {
                throw .invalid("backoffRatio", "The backoff ratio must be in 0.5..<1.")
            }
        case .gradient(let tolerance, let smoothing, let window):
            guard tolerance.isFinite, tolerance >= 1 else {
                throw .invalid("tolerance", "The tolerance must be at least 1.")
            }
            guard smoothing > 0, smoothing <= 1 else { throw .invalid("smoothing", "The smoothing must be in (0, 1].") }
            guard window >= 1 else { throw .invalid("windowSize", "The window size must be at least 1.") }
        case .poolWaitTime(let target, let ratio, let window):
            guard target > .zero else { throw .invalid("target", "The target wait must be above zero.") }
            guard ratio >= 0.5, ratio < 1 else {
                throw .invalid("backoffRatio", "The backoff ratio must be in 0.5..<1.")
            }
            guard window >= 1 else { throw .invalid("windowSize", "The window size must be at least 1.") }
        }
    }
}
