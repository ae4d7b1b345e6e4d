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

    @Test("a contention-bound curve is decided by latency: p99 doubles at 11, long before 90 % of the best")
    func contentionBound() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.1, coherency: 0)
        let advice = try PoolSizeAdvisor.advise(
            points: ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32]),
            budget: budget
        )
        #expect(advice.fittedPeakConcurrency == nil)
        #expect(advice.usedFittedThroughput)
        // D(n) = 1 + 0.1(n − 1) ≤ 2 up to n = 11; X(11)/X(32) = 0.57.
        #expect(advice.recommendedPerInstance == 11)
        #expect(advice.decision.clause == .latencyBound)
        #expect(advice.reasoning.contains { $0.hasPrefix("Decided by latency") && $0.contains("11 gives the most") })
    }

    @Test("a retrograde curve recommends the smallest size reaching 90 % of the peak, and the peak is reported")
    func retrograde() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.02, coherency: 0.004)
        let advice = try PoolSizeAdvisor.advise(
            points: ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32, 64]),
            budget: budget
        )
        let peak = try #require(advice.fittedPeakConcurrency)
        #expect(abs(peak - 15.65) < 0.2)
        #expect(advice.measuredPeakConcurrency == 16)
        // X(10) = 0.914·X(16) with D(10) = 1.54; X(9) = 0.886·X(16).
        #expect(advice.recommendedPerInstance == 10)
        #expect(advice.decision.clause == .throughputReached)
        #expect(advice.reasoning.contains { $0.hasPrefix("Decided by throughput: 10 is the smallest size") })
        #expect(advice.reasoning.contains { $0.contains("peaks at about 15.6") })
    }

    @Test("doubling the throughput at the same latency is never given up (the issue's measurements)")
    func neverGivesUpFreeThroughput() throws {
        // `advise` on a throwaway 2-core server once recommended 1 from these figures.
        let points = [
            LoadPoint(concurrency: 1, throughput: 7_337, latencyP50: 0.000131, latencyP99: 0.000210),
            LoadPoint(concurrency: 2, throughput: 13_768, latencyP50: 0.000131, latencyP99: 0.000230),
            LoadPoint(concurrency: 4, throughput: 15_200, latencyP50: 0.000250, latencyP99: 0.000480),
            LoadPoint(concurrency: 8, throughput: 14_100, latencyP50: 0.000540, latencyP99: 0.001100),
            LoadPoint(concurrency: 16, throughput: 12_900, latencyP50: 0.001200, latencyP99: 0.002600),
        ]
        let advice = try PoolSizeAdvisor.advise(points: points, budget: budget)
        #expect(advice.recommendedPerInstance >= 2)
        #expect(advice.recommendedPerInstance <= 4)
        // The fitted curve peaks near 6 and p99 doubles past 3: the latency clause decides, at 3.
        #expect(advice.decision.chosen.size == 3)
        #expect(advice.decision.chosen.throughput > 13_768)
        #expect(advice.reasoning.contains { $0.hasPrefix("Decided by latency") })
    }

    @Test("the total is split among instances and capped by max_connections minus reserved")
    func budgetCaps() throws {
        let model = ScalabilityModel(singleClientThroughput: 1_000, contention: 0.01, coherency: 0.0002)
        let points = ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32, 64])
        let split = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 200, reservedConnections: 3, instances: 4)
        )
        #expect(split.decision.chosen.size == 41)
        #expect(split.recommendedPerInstance == 11)
        #expect(split.recommendedTotal == 44)
        #expect(split.reasoning.last == "Recommended: maximumSize = 11 per instance × 4 instance(s) = 44 in total.")

        let tight = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 30, reservedConnections: 6, instances: 6)
        )
        #expect(tight.recommendedPerInstance == 4)
        #expect(tight.recommendedTotal == 24)
        #expect(tight.reasoning.contains { $0.contains("The connection budget caps the total: 24 connections") })
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
