import Testing

@testable import ReservoirCommand

@Suite("Pool size advisor")
struct PoolSizeAdvisorTests {
    let budget = ConnectionBudget(maxConnections: 100, reservedConnections: 3, instances: 1)

    @Test("a linear curve recommends the largest measured size and asks to measure further")
    func linear() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0, coherency: 0)
        let advice = try PoolSizeAdvisor.advise(
            points: ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8]),
            budget: budget
        )
        #expect(advice.fittedKneeConcurrency == nil)
        #expect(advice.fittedPeakConcurrency == nil)
        #expect(advice.recommendedPerInstance == 8)
        #expect(advice.reasoning.contains { $0.contains("measure larger sizes") })
    }

    @Test("a saturating curve recommends the knee (1 − σ)/σ, or the measured one when it comes first")
    func saturating() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.1, coherency: 0)
        let advice = try PoolSizeAdvisor.advise(
            points: ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32]),
            budget: budget
        )
        #expect(advice.fittedPeakConcurrency == nil)
        let knee = try #require(advice.fittedKneeConcurrency)
        #expect(abs(knee - 9) < 0.05)
        // Between 8 and 16 connections p99 latency grows 47 % while throughput grows 36 %: the measured knee is 8.
        #expect(advice.measuredKneeConcurrency == 8)
        #expect(advice.recommendedPerInstance == 8)
    }

    @Test("a retrograde curve recommends below the peak, and the peak is reported")
    func retrograde() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.02, coherency: 0.004)
        let advice = try PoolSizeAdvisor.advise(
            points: ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32, 64]),
            budget: budget
        )
        let peak = try #require(advice.fittedPeakConcurrency)
        #expect(abs(peak - 15.65) < 0.2)
        #expect(advice.measuredPeakConcurrency == 16)
        #expect(advice.recommendedPerInstance < Int(peak))
        #expect(advice.recommendedPerInstance >= 5)
    }

    @Test("the total is split among instances and capped by max_connections minus reserved")
    func budgetCaps() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.01, coherency: 0.0002)
        let points = ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32, 64])
        let split = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 200, reservedConnections: 3, instances: 4)
        )
        #expect(split.recommendedPerInstance == (split.recommendedTotal + 3) / 4)

        let tight = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 30, reservedConnections: 6, instances: 6)
        )
        #expect(tight.recommendedTotal > 24)
        #expect(tight.recommendedPerInstance == 4)
        #expect(tight.reasoning.contains { $0.contains("each may hold at most 4") })
    }

    @Test("an invalid budget is a clear error")
    func invalidBudget() {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.1, coherency: 0)
        let points = ScalabilityFitTests.points(model, sizes: [1, 2, 4])
        #expect(throws: AdviceError.self) {
            try PoolSizeAdvisor.advise(
                points: points,
                budget: ConnectionBudget(maxConnections: 100, reservedConnections: 0, instances: 0)
            )
        }
    }
}

@Suite("Measured knee")
struct MeasuredKneeTests {
    static func point(_ size: Int, _ throughput: Double, p99 milliseconds: Double) -> LoadPoint {
        LoadPoint(concurrency: size, throughput: throughput, latencyP50: milliseconds / 3000, latencyP99: milliseconds / 1000)
    }

    @Test("one noisy step does not decide: the next step must confirm it")
    func needsConfirmation() {
        let noisy = [
            Self.point(1, 1_000, p99: 1.0), Self.point(2, 1_900, p99: 1.5),  // p99 +50 %, throughput +90 %: fine
            Self.point(4, 1_800, p99: 1.8),  // p99 +20 %, throughput −5 %: a blip …
            Self.point(8, 3_500, p99: 1.9),  // … not confirmed: throughput +94 %, p99 +6 %
            Self.point(16, 3_700, p99: 4.0),  // p99 +110 %, throughput +6 %
            Self.point(32, 3_600, p99: 9.0),  // confirmed
        ]
        #expect(PoolSizeAdvisor.measuredKnee(noisy) == 8)
    }

    @Test("a rise at the last step counts without confirmation, and a flat curve has no knee")
    func lastStepAndFlat() {
        let rising = [Self.point(1, 1_000, p99: 1), Self.point(2, 2_000, p99: 1), Self.point(4, 2_100, p99: 2)]
        #expect(PoolSizeAdvisor.measuredKnee(rising) == 2)
        let flat = [Self.point(1, 1_000, p99: 1), Self.point(2, 2_000, p99: 1), Self.point(4, 4_000, p99: 1.05)]
        #expect(PoolSizeAdvisor.measuredKnee(flat) == nil)
    }
}
