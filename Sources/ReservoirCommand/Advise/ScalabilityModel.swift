/// The Universal Scalability Law (Gunther): throughput of a system at concurrency `n`.
///
///     X(n) = λ·n / (1 + σ·(n − 1) + κ·n·(n − 1))
///
/// - `λ` (`singleClientThroughput`) is the throughput of one client with no contention;
/// - `σ` (`contention`) is the serialised fraction: queueing on a shared resource (locks, a single disk);
/// - `κ` (`coherency`) is the cost of keeping workers consistent with each other (cache lines, lock hand-offs,
///   buffer-pool churn). With `κ > 0` throughput peaks and then falls (retrograde scaling).
public struct ScalabilityModel: Sendable, Hashable, Codable {
    /// λ: throughput at concurrency 1 without contention, in operations per second.
    public var singleClientThroughput: Double
    /// σ: contention, in [0, 1].
    public var contention: Double
    /// κ: coherency, ≥ 0.
    public var coherency: Double

    /// Creates a model from its three coefficients.
    ///
    /// - Parameters:
    ///   - singleClientThroughput: λ, operations per second at concurrency 1.
    ///   - contention: σ.
    ///   - coherency: κ.
    public init(singleClientThroughput: Double, contention: Double, coherency: Double) {
        self.singleClientThroughput = singleClientThroughput
        self.contention = contention
        self.coherency = coherency
    }

    /// The denominator `1 + σ(n−1) + κn(n−1)`: how much slower each client runs at concurrency `n` than alone.
    ///
    /// - Parameter concurrency: the number of concurrent clients, ≥ 1.
    /// - Returns: the slowdown factor, ≥ 1 for valid coefficients.
    public func slowdown(at concurrency: Double) -> Double {
        1 + contention * (concurrency - 1) + coherency * concurrency * (concurrency - 1)
    }

    /// The predicted throughput at a concurrency.
    ///
    /// - Parameter concurrency: the number of concurrent clients, ≥ 1.
    /// - Returns: operations per second.
    public func throughput(at concurrency: Double) -> Double {
        singleClientThroughput * concurrency / slowdown(at: concurrency)
    }

    /// The predicted mean latency of a closed loop at a concurrency, by Little's law (`n / X(n)`).
    ///
    /// - Parameter concurrency: the number of concurrent clients, ≥ 1.
    /// - Returns: seconds per operation.
    public func latency(at concurrency: Double) -> Double {
        slowdown(at: concurrency) / singleClientThroughput
    }

    /// The concurrency at which throughput peaks, `√((1 − σ) / κ)`; `nil` when it never peaks (κ = 0).
    public var peakConcurrency: Double? {
        guard coherency > 0 else { return nil }
        return max(1, ((1 - contention) / coherency).squareRoot())
    }

    /// The smallest concurrency past which latency grows faster than throughput.
    ///
    /// In a closed loop latency is `R = n / X` (Little's law), so with `D(n)` the slowdown the elasticities are
    /// `d ln X / d ln n = 1 − n·D′/D` and `d ln R / d ln n = n·D′/D`: latency outgrows throughput once
    /// `n·D′(n) / D(n) > ½`. `nil` when it never does (σ = κ = 0: linear scaling).
    public var kneeConcurrency: Double? {
        Self.kneeConcurrency(contention: contention, coherency: coherency)
    }

    /// Solves `2n·D′(n) = D(n)` for `n ≥ 1`.
    ///
    /// `2n(σ + κ(2n − 1)) = 1 + σ(n − 1) + κn(n − 1)`
    /// ⇔ `4κn² + 2(σ − κ)n = 1 − σ + σn + κn² − κn`
    /// ⇔ `3κn² + (σ − κ)n − (1 − σ) = 0`.
    /// With κ = 0 this is `n = (1 − σ) / σ`; with both zero there is no knee.
    static func kneeConcurrency(contention sigma: Double, coherency kappa: Double) -> Double? {
        if kappa > 0 {
            let b = sigma - kappa
            let discriminant = b * b + 12 * kappa * (1 - sigma)
            let root = (-b + discriminant.squareRoot()) / (6 * kappa)
            return max(1, root)
        }
        guard sigma > 0 else { return nil }
        return max(1, (1 - sigma) / sigma)
    }
}
