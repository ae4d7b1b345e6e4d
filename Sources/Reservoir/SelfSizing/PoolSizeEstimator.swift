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
        /// The throughput's relative standard error: the hold times' coefficient of variation over √releases (in a
        /// limit-bound window throughput is limit ÷ mean hold, by Little's law).
        var relativeError: Double = 0
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
    private var windowHoldSquares = 0.0
    /// How many times `releasesPerWindow` the current window must hold: doubled while a comparison is inside the
    /// noise, up to ``largestWindowScale``.
    private(set) var windowScale = 1

    static let largestWindowScale = 32
    /// Standard errors a change must exceed to count.
    static let significance = 2.0

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
        let holdNanoseconds = Double(heldFor.components.seconds) * 1e9 + Double(heldFor.components.attoseconds) / 1e9
        windowHoldNanoseconds += holdNanoseconds
        windowHoldSquares += holdNanoseconds * holdNanoseconds
        guard windowReleases >= releasesPerWindow * windowScale, now > start else { return nil }
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let count = Double(windowReleases)
        let meanHold = windowHoldNanoseconds / count
        let variance = max(0, windowHoldSquares / count - meanHold * meanHold)
        let window = Window(
            limit: limit,
            throughput: count / seconds,
            meanHoldSeconds: meanHold / 1e9,
            limitBound: windowWaitingReleases * 2 >= windowReleases,
            relativeError: meanHold > 0 ? variance.squareRoot() / meanHold / count.squareRoot() : 0
        )
        lastWindow = window
        if settling {
            settling = false
            resetWindow(now: now)
            return nil
        }
        switch judge(window) {
        case .inconclusive where windowScale < Self.largestWindowScale:
            // Inside the noise: keep measuring at this limit, over a window twice as long.
            windowScale *= 2
            return nil
        case .inconclusive:
            // Still inside the noise at the longest window: keep this limit, and compare later windows with it.
            previous = window
            resetWindow(now: now)
            return nil
        case .decided(let next):
            resetWindow(now: now)
            settling = next != nil
            return next
        }
    }

    private mutating func resetWindow(now: Duration) {
        windowStart = now
        windowReleases = 0
        windowWaitingReleases = 0
        windowHoldNanoseconds = 0
        windowHoldSquares = 0
        windowScale = 1
    }

    enum Judgement: Equatable {
        /// The window moved the limit, or taught that it should stay (`nil`).
        case decided(Int?)
        /// The change from the previous window is inside the noise: measure longer.
        case inconclusive
    }

    /// Compares a completed window with the previous limit-bound one and moves the limit.
    private mutating func judge(_ window: Window) -> Judgement {
        // Drift guard: when callers did not wait for the limit, the load set the throughput, not the size; nothing
        // is learnt, and the next limit-bound window is not compared across the gap.
        guard window.limitBound else {
            previous = nil
            return .decided(nil)
        }
        if let previous, previous.limit != window.limit, previous.throughput > 0 {
            let gain = window.throughput / previous.throughput - 1
            // A move counts when throughput changed by at least the minimum elasticity times the relative change in
            // size: then the judgement does not depend on the step's size.
            let sizeChange = Double(abs(window.limit - previous.limit)) / Double(min(window.limit, previous.limit))
            let threshold = policy.minimumElasticity * sizeChange
            let noise = Self.significance
                * (window.relativeError * window.relativeError + previous.relativeError * previous.relativeError)
                .squareRoot()
            // Undecidable: the change is beyond the threshold but not beyond the noise, or within the threshold
            // while the noise is too large to call it flat.
            if abs(gain) > threshold ? abs(gain) <= noise : noise > threshold {
                return .inconclusive
            }
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
        guard next != limit else { return .decided(nil) }
        limit = next
        return .decided(next)
    }
}
