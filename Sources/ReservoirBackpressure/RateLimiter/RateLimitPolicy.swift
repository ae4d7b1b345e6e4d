/// How a ``RateLimiter`` spaces out permits. A struct with static factories, so new algorithms never break callers.
public struct RateLimitPolicy: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Base: Hashable, Sendable {
        case tokenBucket(rate: Double, burst: Int)
        case smoothWarmingUp(rate: Double, warmupPeriod: Duration, coldFactor: Double)
    }

    @usableFromInline
    let base: Base

    @inlinable
    init(_ base: Base) { self.base = base }

    /// A token bucket that refills at `rate` permits per second and holds at most `burst` permits.
    ///
    /// Implemented as GCRA (the generic cell rate algorithm): one timestamp of state, O(1) per call. A full bucket
    /// lets `burst` permits through at once; after that, one permit every `1/rate` seconds.
    ///
    /// - Parameters:
    ///   - rate: Permits per second; finite and above zero.
    ///   - burst: The most permits available at once; at least 1. Also the largest single request.
    /// - Returns: The policy; validated when the limiter is created.
    public static func tokenBucket(rate: Double, burst: Int) -> RateLimitPolicy {
        RateLimitPolicy(.tokenBucket(rate: rate, burst: burst))
    }

    /// A rate that ramps up after idle time, as Guava's `SmoothWarmingUp`.
    ///
    /// A limiter that was idle is "cold": its first permits are spaced `coldFactor` times wider than the stable
    /// interval, narrowing linearly to `1/rate` over `warmupPeriod` of sustained use. Use it in front of something
    /// that needs to warm up (a cache, a connection pool that opens connections lazily).
    ///
    /// - Parameters:
    ///   - rate: The stable rate in permits per second; finite and above zero.
    ///   - warmupPeriod: How long the ramp from cold to stable takes; above zero.
    ///   - coldFactor: How much slower the cold rate is than the stable rate; at least 1 (default 3, as Guava).
    /// - Returns: The policy; validated when the limiter is created.
    public static func smoothWarmingUp(
        rate: Double,
        warmupPeriod: Duration,
        coldFactor: Double = 3
    ) -> RateLimitPolicy {
        RateLimitPolicy(.smoothWarmingUp(rate: rate, warmupPeriod: warmupPeriod, coldFactor: coldFactor))
    }

    /// The rate in permits per second.
    public var rate: Double {
        switch base {
        case .tokenBucket(let rate, _): rate
        case .smoothWarmingUp(let rate, _, _): rate
        }
    }

    public var description: String {
        switch base {
        case .tokenBucket(let rate, let burst): "tokenBucket(rate: \(rate)/s, burst: \(burst))"
        case .smoothWarmingUp(let rate, let warmup, let cold):
            "smoothWarmingUp(rate: \(rate)/s, warmupPeriod: \(warmup), coldFactor: \(cold))"
        }
    }

    func validate() throws(BackpressureError) {
        guard rate.isFinite, rate > 0 else {
            throw .invalid("rate", "The rate must be a finite number of permits per second above zero, got \(rate).")
        }
        switch base {
        case .tokenBucket(_, let burst):
            guard burst >= 1 else { throw .invalid("burst", "The burst must be at least 1, got \(burst).") }
        case .smoothWarmingUp(_, let warmupPeriod, let coldFactor):
            guard warmupPeriod > .zero else {
                throw .invalid("warmupPeriod", "The warm-up period must be above zero, got \(warmupPeriod).")
            }
            guard coldFactor.isFinite, coldFactor >= 1 else {
                throw .invalid("coldFactor", "The cold factor must be finite and at least 1, got \(coldFactor).")
            }
        }
    }
}
