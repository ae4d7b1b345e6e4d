import Testing

@testable import ReservoirCommand

/// A database whose throughput follows a known Universal Scalability Law curve, simulated in virtual time: at
/// concurrency `n` each query takes `D(n)/λ` seconds (`D` the USL slowdown) times a per-query jitter (uniform,
/// ±25 %) and a per-step factor (the noise of one measurement, ±`noise`). It runs through the same measurement loop,
/// closed-loop accounting, fit and advisor as `reservoir advise`, without a server or a clock.
struct SimulatedDatabase: LoadStepRunner {
    var model: ScalabilityModel
    var noise: Double
    var seed: UInt64

    /// SplitMix64: a deterministic generator, so each test run sees the same queries.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func probeLatency() async throws -> Duration {
        .seconds(model.latency(at: 1))
    }

    func runStep(size: Int, warmUp: Duration, duration: Duration) async throws -> ClosedLoopRecord {
        var stepRandom = Generator(state: seed &* 31 &+ UInt64(size))
        let stepFactor = 1 + noise * Double.random(in: -1...1, using: &stepRandom)
        let meanService = model.latency(at: Double(size)) * stepFactor
        var merged = ClosedLoopRecord(warmUp: warmUp, duration: duration)
        for client in 0..<size {
            var random = Generator(state: seed ^ (UInt64(size) << 32) ^ UInt64(client))
            var record = ClosedLoopRecord(warmUp: warmUp, duration: duration)
            var now = Duration.zero
            while record.shouldStart(at: now) {
                let service = Duration.seconds(meanService * Double.random(in: 0.75...1.25, using: &random))
                record.record(started: now, finished: now + service)
                now += service
            }
            merged.merge(record)
        }
        return merged
    }
}

@Suite("Advice against a simulated database with a known USL curve")
struct SimulatedDatabaseTests {
    struct Curve: CustomTestStringConvertible, Sendable {
        var name: String
        var model: ScalabilityModel
        var testDescription: String { name }

        /// A curve whose throughput peaks at `peak`: κ = (1 − σ)/peak².
        static func peaking(at peak: Double, contention: Double) -> Curve {
            Curve(
                name: "coherency-bound, peak at \(Int(peak))",
                model: ScalabilityModel(
                    singleClientThroughput: 1_000,
                    contention: contention,
                    coherency: (1 - contention) / (peak * peak)
                )
            )
        }
    }

    static let curves: [Curve] = [
        Curve(name: "linear", model: ScalabilityModel(singleClientThroughput: 1_000, contention: 0, coherency: 0)),
        Curve(
            name: "contention-bound",
            model: ScalabilityModel(singleClientThroughput: 1_000, contention: 0.06, coherency: 0)
        ),
        .peaking(at: 4, contention: 0.1),
        .peaking(at: 16, contention: 0.03),
        .peaking(at: 64, contention: 0.01),
    ]

    /// What the rule gives on the true curve: the same candidates as the advisor builds from a fit, with the true
    /// model (p99 = true latency times the tail factor, which cancels out of the rule's ratio).
    static func truth(_ model: ScalabilityModel, largest: Int) -> SizingRule.Decision? {
        let candidates = (1...largest).map {
            SizingRule.Candidate(
                size: $0,
                throughput: model.throughput(at: Double($0)),
                latencyP99: model.latency(at: Double($0))
            )
        }
        return SizingRule.standard.decide(candidates)
    }

    @Test("the fit recovers σ and κ within 10 % and the advice is the rule's answer for the true curve",
          arguments: curves)
    func recoversCurveAndAdvisesTheRule(curve: Curve) async throws {
        let sizes = LoadCurveMeasurement.doublingSizes(upTo: 128)
        let database = SimulatedDatabase(model: curve.model, noise: 0.01, seed: 11)
        let points = try await LoadCurveMeasurement.run(
            runner: database,
            sizes: sizes,
            requestedDuration: .seconds(1),
            requestedWarmUp: .milliseconds(100)
        )
        #expect(points.map(\.concurrency) == sizes)
        let advice = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 1_000, reservedConnections: 3, instances: 1)
        )
        let fitted = advice.fit.model
        let truth = curve.model
        // Within 10 % of the true value; a true value of zero must come out within a small absolute margin.
        #expect(abs(fitted.contention - truth.contention) <= max(0.1 * truth.contention, 0.002),
                "σ fitted \(fitted.contention), true \(truth.contention)")
        #expect(abs(fitted.coherency - truth.coherency) <= max(0.1 * truth.coherency, 0.000_002),
                "κ fitted \(fitted.coherency), true \(truth.coherency)")
        #expect(advice.usedFittedThroughput)

        let expected = try #require(Self.truth(truth, largest: 128))
        let truthSize = expected.chosen.size
        #expect(advice.recommendedPerInstance == truthSize,
                "recommended \(advice.recommendedPerInstance), the rule on the true curve gives \(truthSize)")
        #expect(advice.decision.clause == expected.clause)
    }

    @Test("the rule's answers for the five curves are the ones worked out by hand")
    func ruleAnswers() throws {
        // Linear: X(n)/X(128) = n/128 ≥ 0.9 first at 116; p99 is flat.
        #expect(Self.truth(Self.curves[0].model, largest: 128)?.chosen.size == 116)
        // σ = 0.06: p99 ∝ 1 + 0.06(n − 1) ≤ 2 up to 17, long before 90 % of X(128): the latency clause decides.
        let contention = try #require(Self.truth(Self.curves[1].model, largest: 128))
        #expect(contention.chosen.size == 17)
        #expect(contention.clause == .latencyBound)
        // Peak at 4 (σ = 0.1, κ = 0.05625): X(3) = 0.963·X(4), X(2) = 0.814·X(4); D(3) = 1.54 ≤ 2.
        #expect(Self.truth(Self.curves[2].model, largest: 128)?.chosen.size == 3)
    }

    @Test("a query slower than the step still counts: steps are sized to the probed latency")
    func slowQueryStepsAreSized() async throws {
        // One query takes 2 s alone; the requested step is 1 s.
        let slow = ScalabilityModel(singleClientThroughput: 0.5, contention: 0.05, coherency: 0)
        let points = try await LoadCurveMeasurement.run(
            runner: SimulatedDatabase(model: slow, noise: 0, seed: 3),
            sizes: [1, 2, 4],
            requestedDuration: .seconds(1),
            requestedWarmUp: .milliseconds(300)
        )
        for point in points {
            #expect(point.throughput > 0)
            #expect(abs(point.throughput / slow.throughput(at: Double(point.concurrency)) - 1) < 0.15)
        }
        let timing = LoadCurveMeasurement.stepTiming(
            requested: .seconds(1),
            requestedWarmUp: .milliseconds(300),
            latency: .seconds(2)
        )
        #expect(timing.duration == .seconds(40))
        #expect(timing.warmUp == .seconds(6))
    }

    @Test("a query that finishes after the window is not counted, one that started before it is")
    func windowAccounting() {
        var record = ClosedLoopRecord(warmUp: .seconds(1), duration: .seconds(2))
        record.record(started: .milliseconds(500), finished: .milliseconds(1_500))  // started in the warm-up: counts
        record.record(started: .milliseconds(2_900), finished: .milliseconds(3_100))  // ends after the window: no
        record.record(started: .zero, finished: .milliseconds(900))  // ends in the warm-up: no
        #expect(record.point(concurrency: 1).throughput == 0.5)
        #expect(record.shouldStart(at: .milliseconds(2_999)))
        #expect(!record.shouldStart(at: .seconds(3)))
    }
}
