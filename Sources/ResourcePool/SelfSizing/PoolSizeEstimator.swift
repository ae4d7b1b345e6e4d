/// The pure core of self-sizing: releases in, a new effective maximum out (see ``SelfSizingPolicy`` for the rule).
///
/// It never reads a clock, locks or logs: the pool feeds it each release with `now` under its lock, and applies a
/// changed limit to its state machine (``PoolStateMachine/effectiveMaximumChanged(to:now:)``) in the same critical
/// section.
@usableFromInline
struct PoolSizeEstimator: Sendable, Equatable {
    /// The figures of the last completed window, for statistics and tests.
    struct Window: Sendable, Equatable {
        /// The effective maximum during the window.
        var limit: Int
        /// Releases per second.
        var throughput: Double
        /// Mean hold time, in seconds.
        var meanHoldSeconds: Double
        /// Whether callers were waiting at half the window's releases or more (the limit decided its throughput).
        var limitBound: Bool
    }

    static let largestStep = 0.25
    static let smallestStep = 1.0 / 8

    let policy: SelfSizingPolicy
    let lowerBound: Int
    let upperBound: Int
    /// The effective maximum.
    private(set) var limit: Int
    /// The direction of the last move: +1 up, −1 down.
    private(set) var direction = 1
    /// The step as a fraction of the limit: halved on each reversal (so the limit closes in on the best size),
    /// doubled while moves in one direction keep paying (so it follows a curve that changed).
    private(set) var stepFraction = PoolSizeEstimator.largestStep
    /// The last limit-bound window, which the next one is compared with.
    private(set) var previous: Window?
    /// The last completed window.
    private(set) var lastWindow: Window?

    /// Whether the current window started right after a change: leases granted under the old limit end in it, so it
    /// is not judged.
    private var settling = false
    private var windowStart: Duration?
    private var windowReleases = 0
    private var windowWaitingReleases = 0
    private var windowHoldNanoseconds = 0.0

    /// Creates an estimator for a pool of `minimumSize...maximumSize`.
    init(policy: SelfSizingPolicy, minimumSize: Int, maximumSize: Int) {
        self.policy = policy
        self.lowerBound = max(1, minimumSize)
        self.upperBound = max(self.lowerBound, maximumSize)
        self.limit = min(self.upperBound, max(self.lowerBound, policy.initialSize ?? self.lowerBound))
    }

    /// Releases a window must hold at the current limit.
    var releasesPerWindow: Int {
        max(policy.minimumReleasesPerWindow, policy.releasesPerConnection * limit)
    }

    /// A lease ended.
    ///
    /// - Parameters:
    ///   - heldFor: how long it was held.
    ///   - waiting: callers waiting for a resource when it ended.
    ///   - now: the current time.
    /// - Returns: the new effective maximum when it changed.
    mutating func leaseReleased(heldFor: Duration, waiting: Int, now: Duration) -> Int? {
        guard let start = windowStart else {
            // The first release starts the first window; it is not counted, since the time before it is unknown.
            windowStart = now
            return nil
        }
        windowReleases += 1
        if waiting > 0 { windowWaitingReleases += 1 }
        windowHoldNanoseconds += Double(heldFor.components.seconds) * 1e9
            + Double(heldFor.components.attoseconds) / 1e9
        guard windowReleases >= releasesPerWindow, now > start else { return nil }
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let window = Window(
            limit: limit,
            throughput: Double(windowReleases) / seconds,
            meanHoldSeconds: windowHoldNanoseconds / Double(windowReleases) / 1e9,
            limitBound: windowWaitingReleases * 2 >= windowReleases
        )
        lastWindow = window
        windowStart = now
        windowReleases = 0
        windowWaitingReleases = 0
        windowHoldNanoseconds = 0
        if settling {
            settling = false
            return nil
        }
        let next = windowCompleted(window)
        settling = next != nil
        return next
    }

    /// Compares a completed window with the previous limit-bound one and moves the limit.
    private mutating func windowCompleted(_ window: Window) -> Int? {
        // Drift guard: when callers did not wait for the limit, the load set the throughput, not the size; nothing
        // is learnt, and the next limit-bound window is not compared across the gap.
        guard window.limitBound else {
            previous = nil
            return nil
        }
        if let previous, previous.limit != window.limit, previous.throughput > 0 {
            let gain = window.throughput / previous.throughput - 1
            // A move counts when throughput changed by at least the minimum elasticity times the relative change in
            // size: then the judgement does not depend on the step's size.
            let sizeChange = Double(abs(window.limit - previous.limit)) / Double(min(window.limit, previous.limit))
            let threshold = policy.minimumElasticity * sizeChange
            let before = direction
            if gain < -threshold {
                // The last move hurt: go back.
                direction = -direction
            } else if gain <= threshold {
                // No throughput for the extra connections (or none lost by giving them up): only latency. Go down.
                direction = -1
            } else {
                // The last move helped: keep going, faster.
                stepFraction = min(Self.largestStep, stepFraction * 2)
            }
            if direction != before {
                stepFraction = max(Self.smallestStep, stepFraction / 2)
            }
        } else if let previous, previous.limit == window.limit {
            // Pinned at a bound: turn around so that the next comparison means something.
            direction = limit >= upperBound ? -1 : (limit <= lowerBound ? 1 : direction)
        }
        previous = window
        let step = max(1, Int((Double(limit) * stepFraction).rounded()))
        let next = min(upperBound, max(lowerBound, limit + direction * step))
        guard next != limit else { return nil }
        limit = next
        return next
    }
}
