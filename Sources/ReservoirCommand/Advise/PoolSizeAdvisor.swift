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
    /// The total connections the database serves best with, across all instances.
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
    /// Fits the Universal Scalability Law to `points` and recommends a pool size.
    ///
    /// The target is the knee: the concurrency past which latency grows faster than throughput (the fitted one,
    /// confirmed by the measured points when they show it earlier). Past the knee each extra connection buys less
    /// throughput than it costs in latency; past the peak it buys negative throughput. With no knee in sight the
    /// database scaled linearly over the measured range, so the target is the largest measured size and the advice
    /// says to measure further. The total is then divided among the instances and capped by the connection budget.
    ///
    /// - Parameters:
    ///   - points: measured points; at least three distinct concurrencies.
    ///   - budget: the server's connection budget and the number of instances.
    /// - Returns: the advice.
    /// - Throws: `AdviceError` when the points cannot be fitted or the budget is invalid.
    public static func advise(points: [LoadPoint], budget: ConnectionBudget) throws -> PoolSizeAdvice {
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
        let measuredKnee = Self.measuredKnee(sorted)
        let fittedKnee = model.kneeConcurrency
        let largestMeasured = sorted.last!.concurrency

        reasoning.append(
            "Fitted USL: λ = \(format(model.singleClientThroughput)) ops/s per connection, "
                + "σ (contention) = \(format(model.contention)), κ (coherency) = \(format(model.coherency)), "
                + "within \(format(fit.relativeError * 100)) % of the measurements."
        )
        if fit.relativeError > 0.15 {
            reasoning.append(
                "The measurements are noisy (the fit is off by \(format(fit.relativeError * 100)) %): rerun with a "
                    + "longer --duration, on a quieter machine, or with a release build of the client."
            )
        }
        var target: Int
        if let fittedKnee {
            target = Int(fittedKnee.rounded())
            reasoning.append(
                "Latency grows faster than throughput past about \(format(fittedKnee)) connections (fitted)."
            )
            if let measuredKnee, measuredKnee < target {
                target = measuredKnee
                reasoning.append(
                    "The measurements show it earlier: p99 latency outgrew throughput after \(measuredKnee)."
                )
            }
            if target > largestMeasured {
                reasoning.append(
                    "That is beyond the largest size measured (\(largestMeasured)): the figure is extrapolated."
                )
            }
        } else {
            target = measuredKnee ?? largestMeasured
            reasoning.append(
                "Throughput scaled about linearly up to \(largestMeasured) connections: measure larger sizes to find "
                    + "the limit."
            )
        }
        if let peak = model.peakConcurrency {
            reasoning.append("Throughput peaks at about \(format(peak)) connections and falls beyond it.")
        }
        target = max(1, target)

        let perInstanceLimit = budget.perInstanceLimit
        var perInstance = (target + budget.instances - 1) / budget.instances
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
                "Recommended: maximumSize = \(perInstance) per instance (\(perInstance * budget.instances) in total)."
            )
        }
        return PoolSizeAdvice(
            fit: fit,
            points: sorted,
            measuredPeakConcurrency: measuredPeak,
            fittedPeakConcurrency: model.peakConcurrency,
            measuredKneeConcurrency: measuredKnee,
            fittedKneeConcurrency: fittedKnee,
            recommendedTotal: target,
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
