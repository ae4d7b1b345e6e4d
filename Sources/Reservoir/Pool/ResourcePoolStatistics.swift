import CoreMetrics
import DequeModule
import Logging

/// A snapshot of a pool's figures, from ``ResourcePool/statistics``.
public struct ResourcePoolStatistics: Sendable {
    /// Resources ready to lease.
    public var idle: Int
    /// Resources held by leases.
    public var leased: Int
    /// Creations in flight.
    public var creating: Int
    /// Idle resources being checked by the keep-alive hook.
    public var keepingAlive: Int
    /// Resources being closed (they still count toward the maximum).
    public var closing: Int
    /// Callers waiting for a resource.
    public var waiting: Int
    /// How long the longest-waiting caller has waited (PgBouncer's `maxwait`): the saturation signal.
    public var oldestWaiterAge: Duration?
    /// The configured minimum size.
    public var minimumSize: Int
    /// The configured maximum size.
    public var maximumSize: Int
    /// How many resources may be leased at once: ``maximumSize``, unless self-sizing
    /// (``ResourcePoolConfiguration/selfSizing``) moved it.
    public var effectiveMaximumSize: Int
    /// Whether the circuit breaker is open (creation keeps failing and no resource is open).
    public var circuitBreakerOpen: Bool
    /// Creation failures since the last successful creation.
    public var consecutiveCreationFailures: Int
    /// Counts since the pool was created.
    public var totals: Totals
    /// Figures over the recent window (``ResourcePoolConfiguration/statisticsWindow``, one to two windows long).
    public var window: Window
    /// What the window says about the pool's size.
    public var sizing: SizingAdvice
    /// Leak reports since the pool was created, by acquire site, most reports first: where to look for the code
    /// that drops leases or holds them too long. At most ``LeakSite/maximumSites`` sites are told apart; reports from
    /// further sites are added up under ``LeakSite/otherSites``.
    public var leaksBySite: [LeakSite] = []

    /// The leak reports of one acquire site.
    public struct LeakSite: Sendable, Equatable {
        /// How many distinct sites the pool tells apart.
        public static let maximumSites = 64
        /// The site under which reports from sites past ``maximumSites`` are added up.
        public static let otherSites = "(other sites)"

        /// The acquire site, `Module/File.swift:42 in function(_:)` (see ``AcquireSite``).
        public var site: String
        /// Leases from this site dropped without release (exact leaks).
        public var dropped: Int
        /// Leases from this site held past the leak threshold.
        public var heldTooLong: Int

        /// Creates a site's counts.
        public init(site: String, dropped: Int = 0, heldTooLong: Int = 0) {
            self.site = site
            self.dropped = dropped
            self.heldTooLong = heldTooLong
        }
    }

    /// Counts since the pool was created.
    public struct Totals: Sendable, Equatable {
        /// Leases handed to callers.
        public var acquisitions = 0
        /// Acquires that timed out.
        public var timeouts = 0
        /// Acquires turned away at once (too many waiters, circuit breaker open, shutting down).
        public var rejections = 0
        /// Waiters whose task was cancelled.
        public var cancellations = 0
        /// Resources created.
        public var creations = 0
        /// Failed creations (including a throwing after-create hook).
        public var creationFailures = 0
        /// Resources that failed the before-lease validation.
        public var validationFailures = 0
        /// Hooks that threw.
        public var hookFailures = 0
        /// Leases dropped without release (exact leaks).
        public var leaksDropped = 0
        /// Leases held past the leak threshold (reported once each).
        public var leaksHeldTooLong = 0
        /// Leases reported as held too long that came back.
        public var leaksRecovered = 0
        /// Closed resources by reason (`idle_timeout`, `max_lifetime`, `validation_failed`, `keep_alive_failed`,
        /// `discarded`, `invalidated`, `leaked`, `shutdown`).
        public var evictions: [String: Int] = [:]
    }

    /// Figures over the recent window.
    public struct Window: Sendable, Equatable {
        /// How much time the figures cover.
        public var duration: Duration
        /// Leases granted in the window.
        public var acquisitions: Int
        /// Acquire timeouts in the window.
        public var timeouts: Int
        /// Acquire requests per second that were served or timed out: the offered load (λ in Little's law).
        public var acquireRate: Double
        /// Mean time a resource was held per lease (W in Little's law); `nil` without releases.
        public var meanHoldTime: Duration?
        /// 99th percentile hold time (≈6 % precision).
        public var p99HoldTime: Duration?
        /// Mean wait of the requests in the window (served, timed out or cancelled), zero for leases served at once.
        public var meanWaitTime: Duration?
        /// 99th percentile wait (≈6 % precision).
        public var p99WaitTime: Duration?
    }
}

/// Whether a pool looks undersized, saturated, oversized or fine, from the window's figures.
///
/// The first question is whether callers wait: the mean acquire wait is at least a tenth of the mean hold time, or
/// acquires timed out. A pool whose callers wait is not necessarily too small: when every connection is busy the
/// busy count λ·W equals the maximum whatever the load, so it cannot say how many connections the load needs. What
/// decides is whether the resource behind the pool (the database) would serve more in parallel, which the pool
/// cannot see in its own figures; it takes the database's knee from ``ResourcePoolConfiguration/throughputKnee``
/// (measured by `reservoir advise`):
///
/// - callers wait and the maximum is below the knee: ``Verdict/undersized``, recommended size the knee;
/// - callers wait and the maximum is at or past the knee, or the knee is unknown: ``Verdict/saturated``: more
///   connections would not add throughput (or nobody knows yet): shed load
///   (``ResourcePoolConfiguration/maximumWaiters``, a concurrency limiter in front) or make the work cheaper; with
///   the knee unknown, measure it.
///
/// When callers do not wait, Little's law sizes the pool: with λ the acquire rate and W the mean hold time,
/// L = λ·W resources are busy on average; like square-root staffing, the advice covers the 99th percentile of a
/// Poisson load, L + 2.33·√L, then adds the configured headroom h:
///
///     recommendedSize = max(1, ⌈(L + 2.33·√L) · (1 + h)⌉)
///
/// and the verdict is ``Verdict/oversized`` when that is at most half the maximum size (and the maximum is above the
/// minimum), ``Verdict/fine`` otherwise: a pool whose callers do not wait is never called undersized.
/// ``Verdict/insufficientData`` with fewer than 50 releases in the window.
public struct SizingAdvice: Sendable, Equatable, CustomStringConvertible {
    /// The verdict.
    public struct Verdict: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// Callers wait and the database could serve more connections in parallel: raise the maximum.
        public static let undersized = Verdict("undersized")
        /// Callers wait, and more connections would not help (the database is at its knee) or it is not known
        /// whether they would: shed load or make the work cheaper.
        public static let saturated = Verdict("saturated")
        /// The pool has at least twice the resources its load needs.
        public static let oversized = Verdict("oversized")
        /// The size fits the load.
        public static let fine = Verdict("fine")
        /// Too little traffic in the window to judge.
        public static let insufficientData = Verdict("insufficient_data")
        public var description: String { self.name }
    }

    /// The verdict.
    public var verdict: Verdict
    /// The size the advice recommends (0 when there is no data).
    public var recommendedSize: Int
    /// Mean busy resources, L = λ·W.
    public var busyResources: Double
    /// One line for people.
    public var explanation: String

    public var description: String { "\(self.verdict): \(self.explanation)" }

    /// Computes the advice (see the type's documentation for the rules).
    static func compute(
        window: ResourcePoolStatistics.Window,
        releases: UInt64,
        minimumSize: Int,
        maximumSize: Int,
        headroom: Double,
        leasedNow: Int,
        throughputKnee: Int? = nil
    ) -> SizingAdvice {
        guard releases >= 50, let meanHold = window.meanHoldTime else {
            return SizingAdvice(
                verdict: .insufficientData,
                recommendedSize: 0,
                busyResources: 0,
                explanation: "\(releases) releases in the window; at least 50 are needed to judge"
            )
        }
        let holdSeconds = Double(meanHold.clampedNanoseconds) / 1e9
        let waitSeconds = Double((window.meanWaitTime ?? .zero).clampedNanoseconds) / 1e9
        let busy = window.acquireRate * holdSeconds
        let figures = "λ=\(Self.format(window.acquireRate))/s × W=\(Self.format(holdSeconds * 1000))ms "
            + "→ L=\(Self.format(busy)) busy of \(maximumSize)"
        let callersWait = window.timeouts > 0 || waitSeconds >= 0.1 * holdSeconds
        if callersWait {
            let waiting = "callers wait (mean \(Self.format(waitSeconds * 1000))ms, \(window.timeouts) timeouts) "
                + "with \(figures)"
            guard let knee = throughputKnee else {
                return SizingAdvice(
                    verdict: .saturated,
                    recommendedSize: maximumSize,
                    busyResources: busy,
                    explanation: waiting + "; the database's knee is unknown, so more connections may not help: "
                        + "measure it (reservoir advise) or shed load"
                )
            }
            if maximumSize < knee {
                return SizingAdvice(
                    verdict: .undersized,
                    recommendedSize: knee,
                    busyResources: busy,
                    explanation: waiting + "; the database serves up to \(knee) in parallel: raise maximumSize to "
                        + "\(knee)"
                )
            }
            return SizingAdvice(
                verdict: .saturated,
                recommendedSize: min(maximumSize, knee),
                busyResources: busy,
                explanation: waiting + "; the database's knee is \(knee), so more connections would not add "
                    + "throughput: shed load (maximumWaiters, a concurrency limit) or make the work cheaper"
            )
        }
        let recommended = max(1, Int(((busy + 2.33 * busy.squareRoot()) * (1 + headroom)).rounded(.up)))
        let sized = figures + "; recommended \(recommended), maximum \(maximumSize)"
        if recommended * 2 <= maximumSize && maximumSize > minimumSize {
            return SizingAdvice(verdict: .oversized, recommendedSize: recommended, busyResources: busy,
                                explanation: sized)
        }
        return SizingAdvice(verdict: .fine, recommendedSize: min(recommended, maximumSize), busyResources: busy,
                            explanation: sized)
    }

    private static func format(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}
