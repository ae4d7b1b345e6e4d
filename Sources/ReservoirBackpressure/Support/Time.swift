extension Duration {
    /// The duration in nanoseconds as a `Double` (exact up to 2^53 ns, about 104 days).
    @inlinable
    var nanosecondsDouble: Double {
        // Fast path: a non-negative duration from its two frozen 64-bit halves of attoseconds (no Int128 division,
        // which `components` needs). Measured: the limiters' hot path spent more time converting than deciding.
        if _high >= 0 {
            return (Double(_high) * 18_446_744_073_709_551_616.0 + Double(_low)) * 1e-9
        }
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }

    /// A duration from a (possibly fractional) number of nanoseconds; non-finite values become zero.
    @inlinable
    static func nanosecondsDouble(_ value: Double) -> Duration {
        guard value.isFinite else { return .zero }
        let whole = value.rounded(.towardZero)
        let seconds = (whole / 1e9).rounded(.towardZero)
        let remainder = whole - seconds * 1e9
        return .seconds(Int64(seconds)) + .nanoseconds(Int64(remainder))
    }
}

extension InstantProtocol where Duration == Swift.Duration {
    /// Nanoseconds from `origin` to this instant.
    @inlinable
    func nanoseconds(since origin: Self) -> Double {
        origin.duration(to: self).nanosecondsDouble
    }
}
