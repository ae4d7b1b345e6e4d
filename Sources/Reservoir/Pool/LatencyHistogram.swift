import CoreMetrics
import DequeModule
import Logging

/// A fixed-size log-linear histogram of nanosecond values: exact below 16 ns, then 8 buckets per power of two
/// (about 6 % relative precision). Recording is a handful of integer operations and never allocates.
///
/// The pool keeps its wait and hold times in it; it is public for code that measures latencies the same way (the
/// `reservoir` tool's live figures and load curves, a service's own timings).
public struct LatencyHistogram: Sendable {
    @usableFromInline static let bucketCount = 16 + 60 * 8

    @usableFromInline var buckets: [UInt32]
    @usableFromInline var count: UInt64 = 0
    @usableFromInline var sum: UInt64 = 0

    /// An empty histogram.
    public init() {
        self.buckets = Array(repeating: 0, count: Self.bucketCount)
    }

    @inlinable
    static func bucket(for nanoseconds: UInt64) -> Int {
        if nanoseconds < 16 { return Int(nanoseconds) }
        let exponent = 63 - nanoseconds.leadingZeroBitCount
        let sub = Int((nanoseconds >> UInt64(exponent - 3)) & 7)
        return 16 + (exponent - 4) * 8 + sub
    }

    /// The largest value that falls in the bucket.
    static func upperBound(ofBucket bucket: Int) -> UInt64 {
        if bucket < 16 { return UInt64(bucket) }
        let exponent = (bucket - 16) / 8 + 4
        let sub = UInt64((bucket - 16) % 8)
        return ((8 + sub + 1) << UInt64(exponent - 3)) - 1
    }

    @inlinable
    mutating func record(_ nanoseconds: UInt64) {
        let bucket = Self.bucket(for: nanoseconds)
        self.buckets[bucket] &+= 1
        self.count &+= 1
        self.sum &+= nanoseconds
    }

    mutating func reset() {
        for index in self.buckets.indices { self.buckets[index] = 0 }
        self.count = 0
        self.sum = 0
    }

    /// The value below which `fraction` of the recorded values fall (bucket upper bound), over this histogram and
    /// `other` together.
    func quantile(_ fraction: Double, mergedWith other: LatencyHistogram) -> UInt64? {
        let total = self.count + other.count
        guard total > 0 else { return nil }
        // Clamped: a fraction outside 0...1 (or NaN) from a caller must not trap in the conversion below.
        let fraction = fraction.isNaN ? 1 : min(max(fraction, 0), 1)
        let rank = UInt64((Double(total) * fraction).rounded(.up))
        var seen: UInt64 = 0
        for bucket in 0..<Self.bucketCount {
            seen += UInt64(self.buckets[bucket]) + UInt64(other.buckets[bucket])
            if seen >= max(rank, 1) { return Self.upperBound(ofBucket: bucket) }
        }
        return Self.upperBound(ofBucket: Self.bucketCount - 1)
    }
}

// The public surface: durations in, seconds out.
extension LatencyHistogram {
    /// Records one duration.
    ///
    /// - Parameter duration: the value to record; negative durations count as zero.
    public mutating func record(_ duration: Duration) {
        self.record(duration.clampedNanoseconds)
    }

    /// Adds every value recorded in another histogram.
    ///
    /// - Parameter other: the histogram whose values are added to this one.
    public mutating func merge(_ other: LatencyHistogram) {
        for bucket in 0..<Self.bucketCount { self.buckets[bucket] &+= other.buckets[bucket] }
        self.count &+= other.count
        self.sum &+= other.sum
    }

    /// How many values were recorded.
    public var recordedCount: Int { Int(self.count) }

    /// The value below which a fraction of the recorded values fall, in seconds (its bucket's upper bound, within
    /// about 6 %).
    ///
    /// - Parameter fraction: the quantile, from 0 to 1 (0.99 for the 99th percentile); values outside are clamped.
    /// - Returns: the value in seconds; 0 when nothing was recorded.
    public func quantileSeconds(_ fraction: Double) -> Double {
        self.quantile(fraction, mergedWith: LatencyHistogram()).map { Double($0) / 1e9 } ?? 0
    }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero (for metrics and histograms).
    @inlinable
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(max(attoseconds, 0) / 1_000_000_000)
    }

    init(nanoseconds: UInt64) {
        self = .nanoseconds(Int64(clamping: nanoseconds))
    }
}

/// Live figures over a sliding window of one to two `statisticsWindow`s: acquisitions, timeouts, hold and wait
/// times. Two halves rotate as time passes, so old traffic stops counting without a timer.
@usableFromInline
struct StatisticsWindow: Sendable {
    @usableFromInline
    struct Half: Sendable {
        @usableFromInline var hold = LatencyHistogram()
        @usableFromInline var wait = LatencyHistogram()
        @usableFromInline var timeouts: UInt64 = 0
        /// Leases granted (at once or after waiting).
        @usableFromInline var granted: UInt64 = 0
        @usableFromInline var start: Duration = .zero

        mutating func reset(start: Duration) {
            self.hold.reset()
            self.wait.reset()
            self.timeouts = 0
            self.granted = 0
            self.start = start
        }
    }

    @usableFromInline let length: Duration
    @usableFromInline var current = Half()
    @usableFromInline var previous = Half()

    init(length: Duration) {
        self.length = length
    }

    @inlinable
    mutating func rotateIfNeeded(now: Duration) {
        if now - self.current.start >= self.length { self.rotate(now: now) }
    }

    @usableFromInline
    mutating func rotate(now: Duration) {
        if now - self.current.start >= self.length * 2 {
            self.previous.reset(start: now - self.length)
        } else {
            swap(&self.previous, &self.current)
        }
        self.current.reset(start: now)
    }

    /// A lease was granted after `nanoseconds` of waiting (zero when served at once).
    @inlinable
    mutating func recordGrantedWait(nanoseconds: UInt64, now: Duration) {
        self.rotateIfNeeded(now: now)
        self.current.wait.record(nanoseconds)
        self.current.granted &+= 1
    }

    /// A waiter left without a lease (timed out, cancelled, shut down).
    mutating func recordWait(nanoseconds: UInt64, now: Duration) {
        self.rotateIfNeeded(now: now)
        self.current.wait.record(nanoseconds)
    }

    @inlinable
    mutating func recordHold(nanoseconds: UInt64, now: Duration) {
        self.rotateIfNeeded(now: now)
        self.current.hold.record(nanoseconds)
    }

    mutating func recordTimeout(now: Duration) {
        self.rotateIfNeeded(now: now)
        self.current.timeouts += 1
    }
}
