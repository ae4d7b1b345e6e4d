/// The pure core of ``PostgresRateLimiter``: the local cache of permits taken from the shared bucket in batches, and
/// the reading of the bucket's answer. Local time is nanoseconds since the limiter's origin instant, as a `Double`;
/// the bucket's times are seconds on the server's clock. The shell reads the clock, runs the statement and sleeps.
///
/// With a batch size of 1 the cache stays empty and every request asks the bucket. With a larger batch, a request
/// the cache cannot serve asks the bucket for between the permits it needs and a whole batch; what the bucket grants
/// beyond the request is kept here, usable from the moment the bucket said it is ready until
/// `cachedPermitLifetime` later. Permits that expire unused are lost (counted in `expiredPermits`): the shared
/// bucket already counted them as spent, so the fleet admits slightly less than the target, never more.
struct PostgresRateLimiterStateMachine: Sendable {
    /// What ``acquireRequested(permits:now:maxWait:)`` tells the shell to do.
    enum AcquireAction: Equatable, Sendable {
        /// Indicates that the permits came from the local cache; the caller may use them at `readyAt`.
        case granted(readyAt: Double)
        /// Indicates that the cache cannot serve the request: ask the shared bucket for at least `minimum` and at
        /// most `maximum` permits.
        case fetch(minimum: Int, maximum: Int)
    }

    /// Permits taken from the bucket and not yet handed out.
    struct CachedPermits: Equatable, Sendable {
        /// How many.
        var count: Int
        /// When the bucket said they are ready (local time).
        var usableFrom: Double
        /// When they expire unused (local time).
        var usableUntil: Double
    }

    /// The largest number of permits one round trip asks for.
    let batchSize: Int
    /// How long cached permits stay usable, in nanoseconds.
    let cachedPermitLifetime: Double

    /// The cached permits; `nil` when there are none.
    private(set) var cached: CachedPermits?
    /// Permits handed out from the cache, without a round trip.
    private(set) var cachedGrants = 0
    /// Permits that expired in the cache unused.
    private(set) var expiredPermits = 0

    init(batchSize: Int, cachedPermitLifetime: Double) {
        self.batchSize = batchSize
        self.cachedPermitLifetime = cachedPermitLifetime
    }

    /// A caller asks for `permits` at `now`, accepting a wait of at most `maxWait` nanoseconds (`nil`: any wait).
    mutating func acquireRequested(permits: Int, now: Double, maxWait: Double?) -> AcquireAction {
        if var cached {
            if now > cached.usableUntil {
                expiredPermits += cached.count
                self.cached = nil
            } else if cached.count >= permits {
                let readyAt = Swift.max(now, cached.usableFrom)
                if maxWait.map({ readyAt - now <= $0 }) ?? true {
                    cached.count -= permits
                    self.cached = cached.count > 0 ? cached : nil
                    cachedGrants += permits
                    return .granted(readyAt: readyAt)
                }
            }
        }
        return .fetch(minimum: permits, maximum: Swift.max(permits, batchSize))
    }

    /// The bucket granted `granted` permits to a caller that needed `requested`, ready at `readyAt` (local time);
    /// the surplus joins the cache.
    ///
    /// Scenario: two callers miss the cache at once and both fetch a batch. Both surpluses are kept: the cache's
    /// permits become usable from the later of the two ready times (never earlier than the bucket allowed) and
    /// expire a lifetime after it.
    mutating func batchGranted(granted: Int, requested: Int, readyAt: Double, now: Double) {
        let surplus = granted - requested
        guard surplus > 0 else { return }
        if var cached, now <= cached.usableUntil {
            cached.count += surplus
            cached.usableFrom = Swift.max(cached.usableFrom, readyAt)
            cached.usableUntil = cached.usableFrom + cachedPermitLifetime
            self.cached = cached
        } else {
            if let cached { expiredPermits += cached.count }
            cached = CachedPermits(count: surplus, usableFrom: readyAt, usableUntil: readyAt + cachedPermitLifetime)
        }
    }

    /// Permits in the cache usable at `now` without waiting.
    func cachedPermits(now: Double) -> Int {
        guard let cached, cached.usableFrom <= now, now <= cached.usableUntil else { return 0 }
        return cached.count
    }
}

/// The shared bucket's answer to one acquire statement, and what it means.
struct PostgresRateLimitReply: Equatable, Sendable {
    /// The bucket's theoretical arrival time after the statement, in seconds on the server's clock.
    var theoreticalArrivalTime: Double
    /// The server's clock when the statement decided, in seconds.
    var checkedAt: Double
    /// How many permits the statement granted; 0 when it granted none.
    var granted: Int

    /// What the caller learns from the reply.
    enum Decision: Equatable, Sendable {
        /// Indicates that `count` permits were granted; they may be used `delay` seconds after the decision.
        case granted(count: Int, delay: Double)
        /// Indicates that nothing was granted; the `minimum` permits asked for would be ready `retryAfter` seconds
        /// after the decision.
        case rejected(retryAfter: Double)
    }

    /// Reads the reply of a statement that asked for at least `minimum` permits.
    ///
    /// GCRA with emission interval `T` and burst `b`: `n` permits granted at server time `now` move the bucket's
    /// time `tat` to `max(tat, now) + n·T`, and they conform from `tat − b·T` on. A rejection left `tat` unchanged,
    /// so the permits would conform from `max(tat, now) + minimum·T − b·T`.
    ///
    /// - Parameters:
    ///   - minimum: The fewest permits the statement accepted.
    ///   - interval: `T`, seconds per permit.
    ///   - burstWindow: `b·T`, seconds.
    func decision(minimum: Int, interval: Double, burstWindow: Double) -> Decision {
        if granted > 0 {
            return .granted(count: granted, delay: Swift.max(0, theoreticalArrivalTime - burstWindow - checkedAt))
        }
        let readyAt = Swift.max(theoreticalArrivalTime, checkedAt) + Double(minimum) * interval - burstWindow
        return .rejected(retryAfter: Swift.max(0, readyAt - checkedAt))
    }
}
