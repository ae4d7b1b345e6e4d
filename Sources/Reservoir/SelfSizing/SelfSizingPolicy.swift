/// How a pool finds its own size (``ResourcePoolConfiguration/selfSizing``).
///
/// With a policy set, the pool's **effective maximum** moves between ``ResourcePoolConfiguration/minimumSize`` (at
/// least 1) and ``ResourcePoolConfiguration/maximumSize``: a lease is granted only while fewer than the effective
/// maximum are leased, and resources are created only up to it. The pool climbs the throughput curve of the resource
/// behind it (the database): it counts releases per second over windows of releases, and after each window in which
/// callers were waiting for the limit (so the limit, not the load, decided the throughput) it compares the window's
/// throughput with the previous window's, at the previous limit:
///
/// - throughput rose by more than ``minimumElasticity`` times the relative change in size (0.12 × 25 % = 3 % for a
///   step of a quarter): the last move helped; move again the same way;
/// - throughput fell by more than that: the last move hurt; move back;
/// - in between: more connections bought no throughput worth having, only longer holds (latency); move down.
///
/// Steps start at a quarter of the limit (at least one); each reversal halves the step (down to an eighth) so the
/// limit closes in on the best size, and each move that pays doubles it again (up to a quarter) so the limit follows a
/// curve that changed. The window right after a change is not judged: leases granted under the old limit end in it.
///
/// Noise guard: a window's throughput has a standard error (the hold times' coefficient of variation over
/// √releases, by Little's law). A change not beyond twice the combined error of the two windows, or a "flat" verdict
/// while that error exceeds the threshold, decides nothing: the window goes on, twice as long (up to 32 times), so
/// hold times with a heavy tail slow the pool's learning instead of misleading it.
///
/// Drift guards: a window in which callers did not wait for the limit changes nothing and is not compared with (the
/// load, not the size, set its throughput), so an idle or lightly loaded pool neither grows nor shrinks; and the
/// limit never leaves `minimumSize...maximumSize`. The result oscillates by about a step around the smallest size
/// past which a step up buys less than the threshold, which for a curve with a peak is just below the peak.
public struct SelfSizingPolicy: Sendable, Hashable, CustomStringConvertible {
    /// The relative throughput change a move must bring per relative change in size to count (an elasticity): with
    /// 0.12, 25 % more connections must buy more than 3 % more throughput. Default 0.12: on the simulated USL
    /// curves of the tests the effective maximum settles within 25 % of the peak, with throughput within 10 % of it.
    public var minimumElasticity: Double
    /// Releases in a window, at least; a window also holds at least ``releasesPerConnection`` releases per unit of
    /// the limit, so that each connection completes several leases in it. Default 200.
    public var minimumReleasesPerWindow: Int
    /// Releases per unit of the limit in a window, at least. Default 8.
    public var releasesPerConnection: Int
    /// The effective maximum when the pool starts; `nil` starts at `max(minimumSize, 1)`. Default `nil`.
    public var initialSize: Int?

    /// Climbs the throughput curve (see the type's documentation).
    ///
    /// - Parameters:
    ///   - minimumElasticity: the throughput change per change in size a move must bring to count; in (0, 1).
    ///   - minimumReleasesPerWindow: releases in a window, at least; ≥ 1.
    ///   - releasesPerConnection: releases per unit of the limit in a window, at least; ≥ 1.
    ///   - initialSize: the starting effective maximum, or `nil` for `max(minimumSize, 1)`.
    /// - Returns: the policy.
    public static func throughputSeeking(
        minimumElasticity: Double = 0.12,
        minimumReleasesPerWindow: Int = 200,
        releasesPerConnection: Int = 8,
        initialSize: Int? = nil
    ) -> SelfSizingPolicy {
        SelfSizingPolicy(
            minimumElasticity: minimumElasticity,
            minimumReleasesPerWindow: minimumReleasesPerWindow,
            releasesPerConnection: releasesPerConnection,
            initialSize: initialSize
        )
    }

    public var description: String {
        "throughputSeeking(minimumElasticity: \(minimumElasticity), minimumReleasesPerWindow: "
            + "\(minimumReleasesPerWindow), releasesPerConnection: \(releasesPerConnection), initialSize: "
            + "\(initialSize.map(String.init) ?? "nil"))"
    }

    /// The problem with the policy for a pool of `minimumSize...maximumSize`, naming the field, or `nil`.
    func problem(minimumSize: Int, maximumSize: Int) -> (field: String, message: String)? {
        guard minimumElasticity.isFinite, minimumElasticity > 0, minimumElasticity < 1 else {
            return ("selfSizing.minimumElasticity", "must be between 0 and 1, exclusive (got \(minimumElasticity))")
        }
        guard minimumReleasesPerWindow >= 1 else {
            return ("selfSizing.minimumReleasesPerWindow", "must be at least 1 (got \(minimumReleasesPerWindow))")
        }
        guard releasesPerConnection >= 1 else {
            return ("selfSizing.releasesPerConnection", "must be at least 1 (got \(releasesPerConnection))")
        }
        if let initialSize, !(max(minimumSize, 1)...maximumSize).contains(initialSize) {
            return (
                "selfSizing.initialSize",
                "must be within \(max(minimumSize, 1))...\(maximumSize) (minimumSize...maximumSize; got \(initialSize))"
            )
        }
        return nil
    }
}
