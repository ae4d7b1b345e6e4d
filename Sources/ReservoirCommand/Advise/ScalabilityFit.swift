import Foundation

/// One measured point of a closed-loop load: `concurrency` clients, each issuing its next query as soon as the
/// previous one returns.
public struct LoadPoint: Sendable, Hashable, Codable {
    /// The number of concurrent clients (the pool size under test).
    public var concurrency: Int
    /// Completed operations per second.
    public var throughput: Double
    /// Median latency, in seconds.
    public var latencyP50: Double
    /// 99th percentile latency, in seconds.
    public var latencyP99: Double

    /// Creates a measured point.
    ///
    /// - Parameters:
    ///   - concurrency: concurrent clients, ≥ 1.
    ///   - throughput: operations per second, > 0.
    ///   - latencyP50: median latency in seconds.
    ///   - latencyP99: 99th percentile latency in seconds.
    public init(concurrency: Int, throughput: Double, latencyP50: Double, latencyP99: Double) {
        self.concurrency = concurrency
        self.throughput = throughput
        self.latencyP50 = latencyP50
        self.latencyP99 = latencyP99
    }
}

/// The result of fitting the Universal Scalability Law to measured points.
public struct ScalabilityFit: Sendable, Hashable, Codable {
    /// The fitted model.
    public var model: ScalabilityModel
    /// Root mean square of the relative residuals `(measured − fitted) / measured`: 0.05 means the curve is within
    /// about 5 % of the measurements.
    public var relativeError: Double
}

/// Errors of the scalability fit and the advisor.
public struct AdviceError: Error, Hashable, CustomStringConvertible {
    /// What went wrong, in one sentence.
    public var description: String
}

extension ScalabilityFit {
    /// Fits λ, σ and κ to measured throughput by least squares on relative residuals.
    ///
    /// λ has a closed form for fixed (σ, κ) (variable projection), so the search runs over (σ, κ) only: a coarse
    /// grid (σ linear in [0, 1], κ logarithmic in [10⁻⁷, 1] plus 0) finds the basin, then Nelder–Mead refines it
    /// inside the bounds. Relative residuals weigh the small and the large concurrencies alike.
    ///
    /// - Parameter points: at least three points with distinct concurrencies, all with positive throughput.
    /// - Returns: the fitted model and its error.
    /// - Throws: `AdviceError` when there are too few usable points.
    public static func fit(_ points: [LoadPoint]) throws -> ScalabilityFit {
        let usable = points.filter { $0.concurrency >= 1 && $0.throughput > 0 && $0.throughput.isFinite }
        let distinct = Set(usable.map(\.concurrency))
        guard distinct.count >= 3 else {
            throw AdviceError(
                description: "a scalability fit needs at least three measured pool sizes with throughput above zero; "
                    + "got \(distinct.count)"
            )
        }
        let n = usable.map { Double($0.concurrency) }
        let x = usable.map(\.throughput)

        // For fixed (σ, κ), minimising Σ (1 − λ·gᵢ/xᵢ)² over λ gives λ = Σ rᵢ / Σ rᵢ² with rᵢ = gᵢ/xᵢ.
        func evaluate(_ sigma: Double, _ kappa: Double) -> (lambda: Double, cost: Double) {
            var sumR = 0.0
            var sumR2 = 0.0
            for i in n.indices {
                let g = n[i] / (1 + sigma * (n[i] - 1) + kappa * n[i] * (n[i] - 1))
                let r = g / x[i]
                sumR += r
                sumR2 += r * r
            }
            let lambda = sumR / sumR2
            var cost = 0.0
            for i in n.indices {
                let g = n[i] / (1 + sigma * (n[i] - 1) + kappa * n[i] * (n[i] - 1))
                let residual = 1 - lambda * g / x[i]
                cost += residual * residual
            }
            return (lambda, cost)
        }
        func clamped(_ point: (Double, Double)) -> (Double, Double) {
            (min(max(point.0, 0), 1), min(max(point.1, 0), 1))
        }
        func cost(_ point: (Double, Double)) -> Double {
            let p = clamped(point)
            return evaluate(p.0, p.1).cost
        }

        var best = (0.0, 0.0)
        var bestCost = cost(best)
        let kappas = [0.0] + (0...60).map { pow(10, -7 + Double($0) * 7 / 60) }
        for sigmaStep in 0...100 {
            let sigma = Double(sigmaStep) / 100
            for kappa in kappas {
                let c = cost((sigma, kappa))
                if c < bestCost {
                    bestCost = c
                    best = (sigma, kappa)
                }
            }
        }
        let refined = clamped(nelderMead(start: best, scale: (0.01, max(best.1 * 0.5, 1e-6)), cost: cost))
        let finalPoint = cost(refined) <= bestCost ? refined : best
        let result = evaluate(finalPoint.0, finalPoint.1)
        return ScalabilityFit(
            model: ScalabilityModel(
                singleClientThroughput: result.lambda,
                contention: finalPoint.0,
                coherency: finalPoint.1
            ),
            relativeError: (result.cost / Double(n.count)).squareRoot()
        )
    }

    /// Minimises `cost` over two variables with the Nelder–Mead simplex method (deterministic, derivative-free).
    private static func nelderMead(
        start: (Double, Double),
        scale: (Double, Double),
        cost: ((Double, Double)) -> Double
    ) -> (Double, Double) {
        typealias Point = (Double, Double)
        func add(_ a: Point, _ b: Point, _ t: Double) -> Point { (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)) }
        var simplex: [(point: Point, cost: Double)] = [
            start, (start.0 + scale.0, start.1), (start.0, start.1 + scale.1),
        ].map { ($0, cost($0)) }
        for _ in 0..<400 {
            simplex.sort { $0.cost < $1.cost }
            if abs(simplex[2].cost - simplex[0].cost) <= 1e-14 * max(1, abs(simplex[0].cost)) { break }
            let centroid = ((simplex[0].point.0 + simplex[1].point.0) / 2, (simplex[0].point.1 + simplex[1].point.1) / 2)
            let worst = simplex[2]
            let reflected = add(centroid, worst.point, -1)
            let reflectedCost = cost(reflected)
            if reflectedCost < simplex[0].cost {
                let expanded = add(centroid, worst.point, -2)
                let expandedCost = cost(expanded)
                simplex[2] = expandedCost < reflectedCost ? (expanded, expandedCost) : (reflected, reflectedCost)
            } else if reflectedCost < simplex[1].cost {
                simplex[2] = (reflected, reflectedCost)
            } else {
                let contracted = add(centroid, worst.point, 0.5)
                let contractedCost = cost(contracted)
                if contractedCost < worst.cost {
                    simplex[2] = (contracted, contractedCost)
                } else {
                    let bestPoint = simplex[0].point
                    for i in 1...2 {
                        let shrunk = add(bestPoint, simplex[i].point, 0.5)
                        simplex[i] = (shrunk, cost(shrunk))
                    }
                }
            }
        }
        simplex.sort { $0.cost < $1.cost }
        return simplex[0].point
    }
}
