/// The pure core of ``RateLimiter``: decides when permits are available. Time is nanoseconds since the limiter's
/// origin instant, as a `Double`; the shell reads the clock and sleeps.
///
/// Two algorithms share one interface:
/// - **GCRA** (token bucket): the only state is the theoretical arrival time `tat`. A request for `n` permits at
///   time `t` moves `tat` to `max(tat, t) + n·T` (T = 1/rate) and is ready at `tat − burst·T`. Requests are served in
///   the order they reserve, so waiters are FIFO by construction.
/// - **Smooth warming up** (Guava's `SmoothWarmingUp`): stored permits accumulate while idle; spending stored permits
///   above a threshold costs more than the stable interval, which makes a cold limiter start slowly. As in Guava,
///   "the next request pays": a request waits only for the debt of earlier requests, then adds its own cost.
@usableFromInline
struct RateLimiterStateMachine: Sendable {
    /// The outcome of a reservation.
    @usableFromInline
    enum ReserveResult: Equatable, Sendable {
        /// Indicates that the permits are granted; they may be used at `readyAt`. `cost` is what a refund gives back.
        case granted(readyAt: Double, cost: Double)
        /// Indicates that the permits would be ready only at `readyAt`, after the caller's limit; nothing changed.
        case wouldExceed(readyAt: Double)
        /// Indicates that the request is larger than the limiter can ever grant at once.
        case tooMany(limit: Int)
        /// Indicates that the limiter was shut down.
        case shutDown
    }

    @usableFromInline
    struct GCRA: Sendable {
        @usableFromInline var tat: Double
        @usableFromInline var interval: Double
        @usableFromInline var burst: Int

        @inlinable
        mutating func reserve(permits: Int, now: Double, maxWait: Double?) -> ReserveResult {
            guard permits <= burst else { return .tooMany(limit: burst) }
            let cost = Double(permits) * interval
            let newTAT = Swift.max(tat, now) + cost
            let readyAt = Swift.max(now, newTAT - Double(burst) * interval)
            if let maxWait, readyAt - now > maxWait { return .wouldExceed(readyAt: readyAt) }
            tat = newTAT
            return .granted(readyAt: readyAt, cost: cost)
        }
    }

    @usableFromInline
    struct WarmingUp: Sendable {
        @usableFromInline var stableInterval: Double
        @usableFromInline var coldFactor: Double
        @usableFromInline var warmupPeriod: Double
        @usableFromInline var thresholdPermits: Double
        @usableFromInline var maxPermits: Double
        @usableFromInline var slope: Double
        @usableFromInline var storedPermits: Double
        @usableFromInline var nextFree: Double

        init(rate: Double, warmupPeriod: Double, coldFactor: Double, now: Double) {
            self.stableInterval = 0
            self.coldFactor = coldFactor
            self.warmupPeriod = warmupPeriod
            self.thresholdPermits = 0
            self.maxPermits = 0
            self.slope = 0
            self.storedPermits = 0
            self.nextFree = now
            setRate(rate, now: now)
        }

        /// Guava's `doSetRate`: recompute the ramp; keep the stored fraction (a new limiter starts cold).
        mutating func setRate(_ rate: Double, now: Double) {
            resync(now: now)
            let oldMaxPermits = maxPermits
            stableInterval = 1e9 / rate
            let coldInterval = stableInterval * coldFactor
            thresholdPermits = 0.5 * warmupPeriod / stableInterval
            maxPermits = thresholdPermits + 2 * warmupPeriod / (stableInterval + coldInterval)
            slope = (coldInterval - stableInterval) / (maxPermits - thresholdPermits)
            storedPermits = oldMaxPermits == 0 ? maxPermits : storedPermits * maxPermits / oldMaxPermits
        }

        @inlinable
        var coolDownInterval: Double { warmupPeriod / maxPermits }

        @inlinable
        mutating func resync(now: Double) {
            if now > nextFree {
                storedPermits = Swift.min(maxPermits, storedPermits + (now - nextFree) / coolDownInterval)
                nextFree = now
            }
        }

        @inlinable
        func permitsToTime(_ permits: Double) -> Double { stableInterval + permits * slope }

        /// The time it takes to hand out `permitsToTake` of the stored permits (the area under the ramp).
        @inlinable
        func storedPermitsToWaitTime(stored: Double, permitsToTake: Double) -> Double {
            var permitsToTake = permitsToTake
            var wait = 0.0
            let aboveThreshold = stored - thresholdPermits
            if aboveThreshold > 0 {
                let taken = Swift.min(aboveThreshold, permitsToTake)
                let length = permitsToTime(aboveThreshold) + permitsToTime(aboveThreshold - taken)
                wait = taken * length / 2
                permitsToTake -= taken
            }
            return wait + stableInterval * permitsToTake
        }

        @inlinable
        mutating func reserve(permits: Int, now: Double, maxWait: Double?) -> ReserveResult {
            resync(now: now)
            let readyAt = Swift.max(now, nextFree)
            if let maxWait, readyAt - now > maxWait { return .wouldExceed(readyAt: readyAt) }
            let spend = Swift.min(Double(permits), storedPermits)
            let fresh = Double(permits) - spend
            let cost = storedPermitsToWaitTime(stored: storedPermits, permitsToTake: spend) + fresh * stableInterval
            nextFree += cost
            storedPermits -= spend
            return .granted(readyAt: readyAt, cost: cost)
        }
    }

    @usableFromInline
    enum Algorithm: Sendable {
        case gcra(GCRA)
        case warmingUp(WarmingUp)
    }

    @usableFromInline var algorithm: Algorithm
    @usableFromInline var policy: RateLimitPolicy
    @usableFromInline var isShutDown: Bool

    /// Creates the state machine; `policy` must be valid. A token bucket starts full, a warming-up limiter cold.
    init(policy: RateLimitPolicy, now: Double) {
        self.policy = policy
        self.isShutDown = false
        switch policy.base {
        case .tokenBucket(let rate, let burst):
            self.algorithm = .gcra(GCRA(tat: now, interval: 1e9 / rate, burst: burst))
        case .smoothWarmingUp(let rate, let warmupPeriod, let coldFactor):
            self.algorithm = .warmingUp(
                WarmingUp(rate: rate, warmupPeriod: warmupPeriod.nanosecondsDouble, coldFactor: coldFactor, now: now)
            )
        }
    }

    /// A caller asks for `permits` at `now`, accepting a wait of at most `maxWait` (nil: any wait).
    @inlinable
    mutating func reserve(permits: Int, now: Double, maxWait: Double?) -> ReserveResult {
        if isShutDown { return .shutDown }
        switch algorithm {
        case .gcra(var gcra):
            let result = gcra.reserve(permits: permits, now: now, maxWait: maxWait)
            algorithm = .gcra(gcra)
            return result
        case .warmingUp(var warmingUp):
            let result = warmingUp.reserve(permits: permits, now: now, maxWait: maxWait)
            algorithm = .warmingUp(warmingUp)
            return result
        }
    }

    /// A reservation was given back before it became ready (its waiter was cancelled, or the caller refunded it).
    ///
    /// Its cost is taken off the schedule, so the permits become available to the next caller. A reservation whose
    /// time has already come was used and is not refunded.
    @inlinable
    mutating func refunded(readyAt: Double, cost: Double, now: Double) {
        guard readyAt >= now else { return }
        switch algorithm {
        case .gcra(var gcra):
            gcra.tat -= cost
            algorithm = .gcra(gcra)
        case .warmingUp(var warmingUp):
            warmingUp.nextFree -= cost
            algorithm = .warmingUp(warmingUp)
        }
    }

    /// The policy changed at run time (validated by the shell).
    ///
    /// For the token bucket, the permits already owed are converted to the new rate: `tat − now` is a debt in time
    /// at the old interval and becomes the same number of permits at the new one. Reservations already granted keep
    /// their times.
    mutating func policyChanged(to newPolicy: RateLimitPolicy, now: Double) {
        switch (algorithm, newPolicy.base) {
        case (.gcra(var gcra), .tokenBucket(let rate, let burst)):
            let owedPermits = Swift.max(0, gcra.tat - now) / gcra.interval
            gcra.interval = 1e9 / rate
            gcra.tat = now + owedPermits * gcra.interval
            gcra.burst = burst
            algorithm = .gcra(gcra)
        case (.warmingUp(var warmingUp), .smoothWarmingUp(let rate, let warmupPeriod, let coldFactor))
        where warmupPeriod.nanosecondsDouble == warmingUp.warmupPeriod && coldFactor == warmingUp.coldFactor:
            warmingUp.setRate(rate, now: now)
            algorithm = .warmingUp(warmingUp)
        default:
            self = RateLimiterStateMachine(policy: newPolicy, now: now)
        }
        policy = newPolicy
    }

    /// No more permits: every later reservation fails.
    mutating func shutDown() { isShutDown = true }

    /// Permits that could be taken right now without waiting (for statistics).
    func availablePermits(now: Double) -> Double {
        switch algorithm {
        case .gcra(let gcra):
            return Swift.max(0, Double(gcra.burst) - Swift.max(0, gcra.tat - now) / gcra.interval)
        case .warmingUp(var warmingUp):
            warmingUp.resync(now: now)
            return warmingUp.nextFree <= now ? Swift.max(1, warmingUp.storedPermits) : 0
        }
    }
}
