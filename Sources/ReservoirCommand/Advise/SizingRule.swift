import Foundation

/// The rule `reservoir advise` sizes a pool by (stated in `docs/operations.md`).
///
/// Among the candidate sizes whose p99 latency stays within ``p99Factor`` of the best p99, take the **smallest** whose
/// throughput is at least ``throughputFraction`` of the best throughput; when none reaches it (latency climbs before
/// throughput does), take the candidate with the highest throughput among those within the latency bound. The result
/// is then capped by the connection budget (see ``PoolSizeAdvisor``).
///
/// "Best throughput" is the highest of the candidates: the fitted curve's values when the fit is good, the measured
/// points otherwise. "Best p99" is the lowest measured p99.
public struct SizingRule: Sendable, Hashable, Codable {
    /// A size must reach this fraction of the best throughput. Default 0.9.
    public var throughputFraction: Double
    /// A size's p99 may be at most this multiple of the best p99. Default 2.
    public var p99Factor: Double

    /// The rule with its defaults: 90 % of the best throughput, p99 within 2× of the best.
    public static let standard = SizingRule(throughputFraction: 0.9, p99Factor: 2)

    /// Creates a rule.
    ///
    /// - Parameters:
    ///   - throughputFraction: in (0, 1].
    ///   - p99Factor: ≥ 1.
    public init(throughputFraction: Double, p99Factor: Double) {
        self.throughputFraction = throughputFraction
        self.p99Factor = p99Factor
    }

    /// One size the rule may choose, with the throughput and p99 it is judged by.
    public struct Candidate: Sendable, Hashable, Codable {
        /// The pool size (total connections across instances).
        public var size: Int
        /// Operations per second at that size (fitted or measured).
        public var throughput: Double
        /// p99 latency at that size, in seconds (measured, interpolated between measured sizes).
        public var latencyP99: Double

        /// Creates a candidate.
        public init(size: Int, throughput: Double, latencyP99: Double) {
            self.size = size
            self.throughput = throughput
            self.latencyP99 = latencyP99
        }
    }

    /// Which clause of the rule decided.
    public enum Clause: String, Sendable, Hashable, Codable {
        /// The smallest size within the latency bound that reached the throughput fraction.
        case throughputReached = "throughput_reached"
        /// No size within the latency bound reached the fraction: the one with the most throughput among them.
        case latencyBound = "latency_bound"
    }

    /// What the rule chose and the figures it compared.
    public struct Decision: Sendable, Hashable, Codable {
        /// The chosen candidate.
        public var chosen: Candidate
        /// Which clause decided.
        public var clause: Clause
        /// The best throughput among the candidates.
        public var bestThroughput: Double
        /// The size with the best throughput.
        public var bestThroughputSize: Int
        /// The lowest p99 among the candidates, in seconds.
        public var bestP99: Double
        /// The largest candidate whose p99 stays within the bound.
        public var largestWithinLatencyBound: Int
    }

    /// Applies the rule.
    ///
    /// - Parameter candidates: at least one candidate, any order.
    /// - Returns: the decision, or `nil` with no candidates.
    public func decide(_ candidates: [Candidate]) -> Decision? {
        let sorted = candidates.filter { $0.throughput.isFinite && $0.latencyP99.isFinite }.sorted { $0.size < $1.size }
        guard let bestThroughputCandidate = sorted.max(by: { $0.throughput < $1.throughput }),
            let bestP99 = sorted.map(\.latencyP99).min()
        else { return nil }
        let bestThroughput = bestThroughputCandidate.throughput
        let eligible = sorted.filter { $0.latencyP99 <= bestP99 * p99Factor }
        let largestEligible = eligible.last?.size ?? sorted[0].size
        if let reached = eligible.first(where: { $0.throughput >= bestThroughput * throughputFraction }) {
            return Decision(
                chosen: reached,
                clause: .throughputReached,
                bestThroughput: bestThroughput,
                bestThroughputSize: bestThroughputCandidate.size,
                bestP99: bestP99,
                largestWithinLatencyBound: largestEligible
            )
        }
        // `eligible` holds the lowest-p99 candidate at least, so it is not empty.
        let fallback = eligible.max { ($0.throughput, -$0.size) < ($1.throughput, -$1.size) } ?? sorted[0]
        return Decision(
            chosen: fallback,
            clause: .latencyBound,
            bestThroughput: bestThroughput,
            bestThroughputSize: bestThroughputCandidate.size,
            bestP99: bestP99,
            largestWithinLatencyBound: largestEligible
        )
    }

    /// Candidates at every size from the smallest to the largest measured one, judged on the fitted curve: throughput
    /// `X(n)` from the model, and p99 as the model's closed-loop latency `n / X(n)` times the tail factor (measured
    /// p99 over fitted latency), the median over the measured sizes. The fit smooths the noise of single points; the
    /// tail factor carries the measured shape of the latency distribution.
    ///
    /// - Parameters:
    ///   - points: the measured points, sorted by concurrency.
    ///   - model: the fitted model.
    /// - Returns: one candidate per size.
    static func candidates(points: [LoadPoint], model: ScalabilityModel) -> [Candidate] {
        guard let largest = points.last?.concurrency, let smallest = points.first?.concurrency else { return [] }
        let factors = points.map { $0.latencyP99 / model.latency(at: Double($0.concurrency)) }.sorted()
        let tailFactor = factors[factors.count / 2]
        return (smallest...largest).map { size in
            Candidate(
                size: size,
                throughput: model.throughput(at: Double(size)),
                latencyP99: model.latency(at: Double(size)) * tailFactor
            )
        }
    }
}
