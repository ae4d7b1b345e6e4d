import Foundation

/// A histogram of durations with logarithmic buckets: constant memory, O(1) recording, quantiles within about 2 %.
///
/// Bucket `i` covers `[base·rⁱ, base·rⁱ⁺¹)` with `r = 1.02` and `base = 1 µs`; 1,100 buckets reach past 60 seconds.
/// Values below the base fall into the first bucket, values above the last into the last. A quantile is reported as
/// the geometric middle of its bucket, so its relative error is at most 1 %.
public struct LatencyHistogram: Sendable, Hashable {
    static let base = 1e-6
    static let ratio = 1.02
    static let logRatio = 0.019_802_627_296_179_712  // ln(1.02)
    static let bucketCount = 1_100

    private var buckets: [UInt64]
    /// How many values were recorded.
    public private(set) var count: UInt64 = 0
    /// The sum of the recorded values, in seconds.
    public private(set) var sum: Double = 0
    /// The largest recorded value, in seconds.
    public private(set) var maximum: Double = 0

    /// Creates an empty histogram.
    public init() {
        buckets = Array(repeating: 0, count: Self.bucketCount)
    }

    /// Records one duration.
    ///
    /// - Parameter seconds: the value; negative and non-finite values are ignored.
    public mutating func record(seconds: Double) {
        guard seconds.isFinite, seconds >= 0 else { return }
        buckets[Self.bucket(for: seconds)] += 1
        count += 1
        sum += seconds
        if seconds > maximum { maximum = seconds }
    }

    /// Records one duration.
    ///
    /// - Parameter duration: the value.
    public mutating func record(_ duration: Duration) {
        record(seconds: duration.seconds)
    }

    /// Adds every value of another histogram.
    ///
    /// - Parameter other: the histogram to merge in.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in buckets.indices { buckets[index] += other.buckets[index] }
        count += other.count
        sum += other.sum
        maximum = max(maximum, other.maximum)
    }

    /// The mean of the recorded values in seconds, or 0 when empty.
    public var mean: Double { count == 0 ? 0 : sum / Double(count) }

    /// The value below which a fraction `q` of the recorded values lie, in seconds; 0 when empty.
    ///
    /// - Parameter q: the quantile, in [0, 1] (0.5 is the median, 0.99 the 99th percentile).
    /// - Returns: the quantile's value in seconds.
    public func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = UInt64((min(max(q, 0), 1) * Double(count - 1)).rounded(.down)) + 1
        var seen: UInt64 = 0
        for (index, value) in buckets.enumerated() where value > 0 {
            seen += value
            if seen >= rank {
                return min(Self.middle(of: index), maximum)
            }
        }
        return maximum
    }

    static func bucket(for seconds: Double) -> Int {
        guard seconds > base else { return 0 }
        let index = Int((log(seconds / base) / logRatio).rounded(.down))
        return min(max(index, 0), bucketCount - 1)
    }

    static func middle(of bucket: Int) -> Double {
        base * exp((Double(bucket) + 0.5) * logRatio)
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
