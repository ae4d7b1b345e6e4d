/// The connection budget a recommendation must fit in.
public struct ConnectionBudget: Sendable, Hashable, Codable {
    /// The server's `max_connections`.
    public var maxConnections: Int
    /// Slots kept free for other users: `superuser_reserved_connections`, administrators, migrations, other services.
    public var reservedConnections: Int
    /// How many instances of the service each run a pool against the same server.
    public var instances: Int

    /// Creates a budget.
    ///
    /// - Parameters:
    ///   - maxConnections: the server's `max_connections`.
    ///   - reservedConnections: slots that no pool may take.
    ///   - instances: service instances sharing the server, ≥ 1.
    public init(maxConnections: Int, reservedConnections: Int, instances: Int) {
        self.maxConnections = maxConnections
        self.reservedConnections = reservedConnections
        self.instances = instances
    }

    /// Connections that the pools of all instances may hold together.
    public var availableConnections: Int { max(0, maxConnections - reservedConnections) }

    /// The largest pool one instance may have so that all instances fit in the available connections.
    public var perInstanceLimit: Int { instances > 0 ? availableConnections / instances : 0 }
}

/// A recommended pool size, with the figures it rests on.
public struct PoolSizeAdvice: Sendable, Hashable, Codable {
    /// The fitted scalability model.
    public var fit: ScalabilityFit
    /// The measured points, sorted by concurrency.
    public var points: [LoadPoint]
    /// The concurrency with the highest measured throughput.
    public var measuredPeakConcurrency: Int
    /// The fitted peak `√((1 − σ)/κ)`, or `nil` when the fit shows no retrograde scaling.
    public var fittedPeakConcurrency: Double?
    /// The last measured size before p99 latency grew faster than throughput, or `nil` if it never did.
    public var measuredKneeConcurrency: Int?
    /// The fitted size past which latency grows faster than throughput, or `nil` for linear scaling.
    public var fittedKneeConcurrency: Double?
    /// The rule the recommendation follows.
    public var rule: SizingRule
    /// What the rule decided, with the figures it compared.
    public var decision: SizingRule.Decision
    /// Whether the rule judged the fitted curve (`true`, the fit was within 10 %) or the measured points.
    public var usedFittedThroughput: Bool
    /// The total connections the database serves best with, across all instances, within the budget.
    public var recommendedTotal: Int
    /// The pool size for each instance (`maximumSize`).
    public var recommendedPerInstance: Int
    /// The budget the recommendation was fitted into.
    public var budget: ConnectionBudget
    /// Why this size, in a few sentences an operator can paste into a ticket.
    public var reasoning: [String]
}

/// Recommends a pool size from a measured throughput curve.
public enum PoolSizeAdvisor {
    /// The largest relative fit error at which the rule judges the fitted curve rather than the measured points.
    static let goodFitError = 0.1

    /// Fits the Universal Scalability Law to `points` and recommends a pool size by `rule`.
    ///
    /// The candidates are every size from the smallest to the largest measured one on the fitted curve when the fit is
    /// within 10 % of the measurements (it smooths the noise of single points; see
    /// ``SizingRule/candidates(points:model:)``), or the measured sizes and figures when it is not. The rule
    /// (``SizingRule``) picks the smallest size that reaches a fraction of the best throughput with p99 within a
    /// factor of the best p99. The total is then capped by the connections available and divided among the
    /// instances.
    ///
    /// - Parameters:
    ///   - points: measured points; at least three distinct concurrencies.
    ///   - budget: the server's connection budget and the number of instances.
    ///   - rule: the sizing rule; ``SizingRule/standard`` by default.
    /// - Returns: the advice.
    /// - Throws: `AdviceError` when the points cannot be fitted or the budget is invalid.
    public static func advise(
        points: [LoadPoint],
        budget: ConnectionBudget,
        rule: SizingRule = .standard
    ) throws -> PoolSizeAdvice {
        guard budget.instances >= 1 else {
            throw AdviceError(description: "instances must be at least 1; got \(budget.instances)")
        }
        guard budget.maxConnections >= 1 else {
            throw AdviceError(description: "max_connections must be at least 1; got \(budget.maxConnections)")
        }
        let sorted = points.sorted { $0.concurrency < $1.concurrency }
        let fit = try ScalabilityFit.fit(sorted)
        let model = fit.model
        var reasoning: [String] = []

        let measuredPeak = sorted.max { $0.throughput < $1.throughput }!.concurrency
        let largestMeasured = sorted.last!.concurrency

        reasoning.append(
            "Fitted USL: λ = \(format(model.singleClientThroughput)) ops/s per connection, "
                + "σ (contention) = \(format(model.contention)), κ (coherency) = \(format(model.coherency)), "
                + "within \(format(fit.relativeError * 100)) % of the measurements."
        )
        let usedFitted = fit.relativeError <= goodFitError
        let candidates: [SizingRule.Candidate]
        if usedFitted {
            candidates = SizingRule.candidates(points: sorted, model: model)
        } else {
            reasoning.append(
                "The fit is off by \(format(fit.relativeError * 100)) % (more than \(format(goodFitError * 100)) %): "
                    + "the rule judges the measured sizes only. A longer --duration or a quieter machine may help."
            )
            candidates = sorted.map {
                SizingRule.Candidate(size: $0.concurrency, throughput: $0.throughput, latencyP99: $0.latencyP99)
            }
        }
        guard let decision = rule.decide(candidates) else {
            throw AdviceError(description: "no measured point has a usable throughput and p99")
        }
        let source = usedFitted ? "fitted" : "measured"
        reasoning.append(
            "Rule: the smallest size reaching \(format(rule.throughputFraction * 100)) % of the best throughput "
                + "while p99 stays within \(format(rule.p99Factor))× the best p99. Best throughput "
                + "\(format(decision.bestThroughput)) ops/s (\(source), at \(decision.bestThroughputSize)); best p99 "
                + "\(formatMilliseconds(decision.bestP99)); p99 stays within "
                + "\(formatMilliseconds(decision.bestP99 * rule.p99Factor)) "
                + "up to \(decision.largestWithinLatencyBound) connections."
        )
        let chosen = decision.chosen
        let share = decision.bestThroughput > 0 ? chosen.throughput / decision.bestThroughput : 0
        switch decision.clause {
        case .throughputReached:
            reasoning.append(
                "Decided by throughput: \(chosen.size) is the smallest size reaching "
                    + "\(format(rule.throughputFraction * 100)) % (\(format(chosen.throughput)) ops/s, "
                    + "\(format(share * 100)) % of the best) with p99 \(formatMilliseconds(chosen.latencyP99)) "
                    + "(\(format(chosen.latencyP99 / max(decision.bestP99, 1e-12)))× the best)."
            )
        case .latencyBound:
            reasoning.append(
                "Decided by latency: no size with p99 within \(format(rule.p99Factor))× the best reaches "
                    + "\(format(rule.throughputFraction * 100)) % of the best throughput; "
                    + "\(chosen.size) gives the most within that bound (\(format(chosen.throughput)) ops/s, \(format(share * 100)) % of the best, "
                    + "p99 \(formatMilliseconds(chosen.latencyP99)))."
            )
        }
        let peakBeyondRange = model.peakConcurrency.map { $0 > Double(largestMeasured) } ?? true
        if decision.bestThroughputSize >= largestMeasured, peakBeyondRange {
            reasoning.append(
                "Throughput was still growing at the largest size measured (\(largestMeasured)): measure larger sizes "
                    + "(--max-size) to see where it stops."
            )
        }
        if let peak = model.peakConcurrency {
            reasoning.append("The fitted throughput peaks at about \(format(peak)) connections and falls beyond it.")
        }

        var total = max(1, chosen.size)
        if total > budget.availableConnections {
            reasoning.append(
                "The connection budget caps the total: \(budget.availableConnections) connections are available "
                    + "(max_connections \(budget.maxConnections) − \(budget.reservedConnections) reserved)."
            )
            total = budget.availableConnections
        }
        let perInstanceLimit = budget.perInstanceLimit
        var perInstance = (total + budget.instances - 1) / budget.instances
        if perInstance > perInstanceLimit {
            reasoning.append(
                "\(budget.instances) instance(s) share \(budget.availableConnections) connections "
                    + "(max_connections \(budget.maxConnections) − \(budget.reservedConnections) reserved): "
                    + "each may hold at most \(perInstanceLimit)."
            )
            perInstance = perInstanceLimit
        }
        if perInstance < 1 {
            reasoning.append(
                "The connection budget leaves no connection per instance: raise max_connections, reserve fewer, "
                    + "or put a pooler (PgBouncer) in front."
            )
            perInstance = max(0, perInstance)
        } else {
            reasoning.append(
                "Recommended: maximumSize = \(perInstance) per instance × \(budget.instances) instance(s) = "
                    + "\(perInstance * budget.instances) in total."
            )
        }
        return PoolSizeAdvice(
            fit: fit,
            points: sorted,
            measuredPeakConcurrency: measuredPeak,
            fittedPeakConcurrency: model.peakConcurrency,
            measuredKneeConcurrency: Self.measuredKnee(sorted),
            fittedKneeConcurrency: model.kneeConcurrency,
            rule: rule,
            decision: decision,
            usedFittedThroughput: usedFitted,
            recommendedTotal: perInstance * budget.instances,
            recommendedPerInstance: perInstance,
            budget: budget,
            reasoning: reasoning
        )
    }

    /// The last measured concurrency before p99 latency grew, relative to the previous point, by more than
    /// throughput did (and by more than 10 %), confirmed by the next step when there is one, so that one noisy point
    /// does not decide; `nil` when that never happened.
    static func measuredKnee(_ sorted: [LoadPoint]) -> Int? {
        func latencyOutgrewThroughput(_ step: Int) -> Bool {
            let previous = sorted[step - 1]
            let current = sorted[step]
            guard previous.throughput > 0, previous.latencyP99 > 0 else { return false }
            let throughputGrowth = current.throughput / previous.throughput - 1
            let latencyGrowth = current.latencyP99 / previous.latencyP99 - 1
            return latencyGrowth > throughputGrowth && latencyGrowth > 0.1
        }
        guard sorted.count >= 2 else { return nil }
        for step in 1..<sorted.count where latencyOutgrewThroughput(step) {
            if step + 1 == sorted.count || latencyOutgrewThroughput(step + 1) {
                return sorted[step - 1].concurrency
            }
        }
        return nil
    }
}

/// A latency in seconds as milliseconds, three significant figures.
func formatMilliseconds(_ seconds: Double) -> String {
    "\(format(seconds * 1000)) ms"
}

/// Three significant figures, for reasoning lines.
func format(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    if value == 0 { return "0" }
    let magnitude = abs(value)
    if magnitude >= 100 { return String(Int(value.rounded())) }
    if magnitude >= 1 { return String(Double(Int((value * 100).rounded())) / 100) }
    var scaled = value
    var digits = 0
    while abs(scaled) < 100, digits < 12 {
        scaled *= 10
        digits += 1
    }
    let rounded = scaled.rounded() / pow10(digits)
    return "\(rounded)"
}

private func pow10(_ digits: Int) -> Double {
    var result = 1.0
    for _ in 0..<digits { result *= 10 }
    return result
}
