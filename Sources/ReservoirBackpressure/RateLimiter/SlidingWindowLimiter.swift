import CoreMetrics
import Synchronization

/// The pure core of ``SlidingWindowLimiter``: counts per segment in a ring, time in nanoseconds since the origin.
@usableFromInline
struct SlidingWindowStateMachine: Sendable {
    @usableFromInline
    enum Decision: Equatable, Sendable {
        /// Indicates that the permits were counted.
        case granted
        /// Indicates that there is no room; enough permits expire after this many nanoseconds.
        case retryAfter(Double)
        /// Indicates that the request exceeds the limit itself.
        case tooMany
        /// Indicates that the limiter was shut down.
        case shutDown
    }

    @usableFromInline let limit: Int
    @usableFromInline let segmentLength: Double
    @usableFromInline var counts: [Int]
    @usableFromInline var currentSegment: Int64
    @usableFromInline var total: Int
    @usableFromInline var isShutDown = false

    init(limit: Int, window: Double, segments: Int) {
        self.limit = limit
        self.segmentLength = window / Double(segments)
        self.counts = Array(repeating: 0, count: segments)
        self.currentSegment = 0
        self.total = 0
    }

    /// Moves the window to `now`, forgetting the segments that slid out.
    @inlinable
    mutating func advance(now: Double) {
        let segment = Int64((now / segmentLength).rounded(.down))
        guard segment > currentSegment else { return }
        let steps = Int(Swift.min(segment - currentSegment, Int64(counts.count)))
        for step in 1...steps {
            let index = Int((currentSegment + Int64(step)) % Int64(counts.count))
            total -= counts[index]
            counts[index] = 0
        }
        currentSegment = segment
    }

    /// A caller asks for `permits` at `now`.
    @inlinable
    mutating func acquire(permits: Int, now: Double) -> Decision {
        if isShutDown { return .shutDown }
        guard permits <= limit else { return .tooMany }
        advance(now: now)
        if total + permits <= limit {
            counts[Int(currentSegment % Int64(counts.count))] += permits
            total += permits
            return .granted
        }
        // The k-th oldest segment (k = 1 is the oldest) leaves the window when segment `current + k` starts.
        var needed = total + permits - limit
        for step in 1...counts.count {
            needed -= counts[Int((currentSegment + Int64(step)) % Int64(counts.count))]
            if needed <= 0 {
                return .retryAfter(Double(currentSegment + Int64(step)) * segmentLength - now)
            }
        }
        return .retryAfter(Double(currentSegment + Int64(counts.count)) * segmentLength - now)
    }
}

/// A limiter for "at most N per window" policies: a sliding window of counts kept in segments.
///
/// The window slides one segment at a time (a tenth of the window by default), so the limit holds over any
/// window-long span up to one segment's granularity. Memory is one counter per segment.
///
/// ```swift
/// let limiter = try SlidingWindowLimiter(limit: 100, window: .seconds(60))
/// guard try limiter.tryAcquire() else { throw TooManyRequests() }
/// ```
///
/// ``acquire(permits:deadline:)`` sleeps until enough earlier permits leave the window. Unlike ``RateLimiter``,
/// waiters are not queued: when several wait, whichever wakes first after room appears gets it.
public final class SlidingWindowLimiter<C: Clock>: Sendable where C.Duration == Duration {
    @usableFromInline let state: Mutex<SlidingWindowStateMachine>
    @usableFromInline let clock: C
    @usableFromInline let origin: C.Instant
    @usableFromInline let metrics: LimiterMetrics
    /// The sleeps of callers waiting for room, ended by ``shutdown()``.
    let sleeps = ShutdownAwareSleeps()

    /// The most permits in any window.
    public let limit: Int
    /// The window length.
    public let window: Duration

    /// Creates a sliding-window limiter.
    ///
    /// - Parameters:
    ///   - limit: The most permits within any `window`; at least 1.
    ///   - window: The window length; above zero.
    ///   - segments: How many segments the window slides by; 1...3600, default 10.
    ///   - clock: The clock to read and sleep on.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `limit`, `window` or `segments`.
    public init(
        limit: Int,
        window: Duration,
        segments: Int = 10,
        clock: C,
        label: String = "sliding_window",
        metricsFactory: (any MetricsFactory)? = nil
    ) throws(BackpressureError) {
        guard limit >= 1 else { throw .invalid("limit", "The limit must be at least 1, got \(limit).") }
        guard window > .zero else { throw .invalid("window", "The window must be above zero, got \(window).") }
        guard (1...3600).contains(segments) else {
            throw .invalid("segments", "The number of segments must be between 1 and 3600, got \(segments).")
        }
        self.limit = limit
        self.window = window
        self.clock = clock
        self.origin = clock.now
        self.state = Mutex(
            SlidingWindowStateMachine(limit: limit, window: window.nanosecondsDouble, segments: segments))
        self.metrics = LimiterMetrics(
            kind: "sliding_window",
            label: label,
            factory: metricsFactory ?? MetricsSystem.factory
        )
    }

    /// Counts `permits` if the window has room for them now.
    ///
    /// - Parameter permits: How many; default 1.
    /// - Returns: `true` when counted.
    /// - Throws: ``BackpressureError/Code/invalidArgument`` (field `permits`) when `permits` is below 1,
    ///   ``BackpressureError/Code/permitsExceedCapacity`` when `permits` exceeds the limit,
    ///   ``BackpressureError/Code/limiterShutDown`` after ``shutdown()``.
    @inlinable
    public func tryAcquire(permits: Int = 1) throws(BackpressureError) -> Bool {
        guard permits >= 1 else { throw RateLimiter<C>.invalidPermits(permits) }
        let now = clock.now.nanoseconds(since: origin)
        switch state.withLock({ $0.acquire(permits: permits, now: now) }) {
        case .granted:
            metrics.granted.increment()
            return true
        case .retryAfter:
            metrics.rejected.increment()
            return false
        case .tooMany:
            throw RateLimiter<C>.tooMany(permits, limit)
        case .shutDown:
            throw RateLimiter<C>.shutDownError()
        }
    }

    /// How long until `permits` would fit (zero if they fit now). Counts nothing.
    ///
    /// - Parameter permits: How many; default 1.
    /// - Returns: The delay.
    public func timeUntilAvailable(permits: Int = 1) -> Duration {
        let now = clock.now.nanoseconds(since: origin)
        return state.withLock { machine in
            var copy = machine
            switch copy.acquire(permits: Swift.max(1, permits), now: now) {
            case .granted, .tooMany, .shutDown: return .zero
            case .retryAfter(let delay): return .nanosecondsDouble(delay)
            }
        }
    }

    /// Waits until the window has room for `permits`, then counts them.
    ///
    /// - Parameters:
    ///   - permits: How many; default 1.
    ///   - deadline: Fail at once with ``BackpressureError/Code/deadlineExceeded`` when room would come later.
    /// - Throws: ``BackpressureError/Code/deadlineExceeded``, ``BackpressureError/Code/cancelled``,
    ///   ``BackpressureError/Code/permitsExceedCapacity``, ``BackpressureError/Code/limiterShutDown``.
    public func acquire(permits: Int = 1, deadline: C.Instant? = nil) async throws(BackpressureError) {
        guard permits >= 1 else { throw RateLimiter<C>.invalidPermits(permits) }
        while true {
            let nowInstant = clock.now
            let now = nowInstant.nanoseconds(since: origin)
            switch state.withLock({ $0.acquire(permits: Swift.max(1, permits), now: now) }) {
            case .granted:
                metrics.granted.increment()
                return
            case .retryAfter(let delay):
                let wakeUp = nowInstant.advanced(by: .nanosecondsDouble(delay))
                if let deadline, wakeUp > deadline {
                    metrics.rejected.increment()
                    throw BackpressureError(.deadlineExceeded, message: "The window has no room before the deadline.")
                }
                switch await sleeps.sleep(until: wakeUp, on: clock) {
                case .slept:
                    continue
                case .cancelled:
                    throw BackpressureError(
                        .cancelled, message: "The task was cancelled while it waited for the window.")
                case .shutDown:
                    throw RateLimiter<C>.shutDownError()
                }
            case .tooMany:
                throw RateLimiter<C>.tooMany(permits, limit)
            case .shutDown:
                throw RateLimiter<C>.shutDownError()
            }
        }
    }

    /// Stops counting: every later call throws ``BackpressureError/Code/limiterShutDown``, and so do the callers of
    /// ``acquire(permits:deadline:)`` still waiting for room, at once.
    public func shutdown() {
        state.withLock { $0.isShutDown = true }
        sleeps.shutDown()
    }
}

extension SlidingWindowLimiter where C == ContinuousClock {
    /// Creates a sliding-window limiter on the continuous clock.
    ///
    /// - Parameters:
    ///   - limit: The most permits within any `window`; at least 1.
    ///   - window: The window length; above zero.
    ///   - segments: How many segments the window slides by; default 10.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public convenience init(limit: Int, window: Duration, segments: Int = 10) throws(BackpressureError) {
        try self.init(limit: limit, window: window, segments: segments, clock: ContinuousClock())
    }
}
