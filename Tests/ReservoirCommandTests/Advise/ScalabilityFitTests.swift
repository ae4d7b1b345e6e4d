import Testing

@testable import ReservoirCommand

@Suite("Universal Scalability Law fit")
struct ScalabilityFitTests {
    static func points(_ model: ScalabilityModel, sizes: [Int], noise: [Double] = []) -> [LoadPoint] {
        sizes.enumerated().map { index, size in
            let factor = noise.isEmpty ? 1 : 1 + noise[index % noise.count]
            let throughput = model.throughput(at: Double(size)) * factor
            let latency = model.latency(at: Double(size))
            return LoadPoint(concurrency: size, throughput: throughput, latencyP50: latency, latencyP99: latency * 2)
        }
    }

    @Test(
        "recovers known contention and coherency from exact points",
        arguments: [
            ScalabilityModel(singleClientThroughput: 12_000, contention: 0.05, coherency: 0.002),
            ScalabilityModel(singleClientThroughput: 900, contention: 0.3, coherency: 0.0),
            ScalabilityModel(singleClientThroughput: 40_000, contention: 0.0, coherency: 0.01),
            ScalabilityModel(singleClientThroughput: 5_000, contention: 0.12, coherency: 0.0005),
        ]
    )
    func recoversExactCoefficients(model: ScalabilityModel) throws {
        let fit = try ScalabilityFit.fit(Self.points(model, sizes: [1, 2, 4, 8, 16, 32, 64]))
        #expect(abs(fit.model.contention - model.contention) < 0.005)
        #expect(abs(fit.model.coherency - model.coherency) < max(0.0001, model.coherency * 0.05))
        #expect(abs(fit.model.singleClientThroughput / model.singleClientThroughput - 1) < 0.01)
        #expect(fit.relativeError < 0.001)
    }

    @Test("stays close to the true curve with ±3 % measurement noise")
    func toleratesNoise() throws {
        let model = ScalabilityModel(singleClientThroughput: 10_000, contention: 0.08, coherency: 0.001)
        let noisy = Self.points(model, sizes: [1, 2, 4, 8, 16, 32, 48], noise: [0.03, -0.02, 0.01, -0.03, 0.02])
        let fit = try ScalabilityFit.fit(noisy)
        #expect(abs(fit.model.contention - model.contention) < 0.04)
        #expect(abs(fit.model.coherency - model.coherency) < 0.001)
        let truePeak = try #require(model.peakConcurrency)
        let fittedPeak = try #require(fit.model.peakConcurrency)
        #expect(abs(fittedPeak - truePeak) / truePeak < 0.25)
    }

    @Test("refuses fewer than three distinct sizes")
    func refusesTooFewPoints() {
        let two = [
            LoadPoint(concurrency: 1, throughput: 100, latencyP50: 0.01, latencyP99: 0.02),
            LoadPoint(concurrency: 2, throughput: 190, latencyP50: 0.01, latencyP99: 0.02),
            LoadPoint(concurrency: 2, throughput: 195, latencyP50: 0.01, latencyP99: 0.02),
        ]
        #expect(throws: AdviceError.self) { try ScalabilityFit.fit(two) }
    }

    @Test("peak and knee follow the closed forms")
    func peakAndKnee() throws {
        let retrograde = ScalabilityModel(singleClientThroughput: 1, contention: 0.1, coherency: 0.01)
        let peak = try #require(retrograde.peakConcurrency)
        #expect(abs(peak - (0.9 / 0.01).squareRoot()) < 1e-9)
        let knee = try #require(retrograde.kneeConcurrency)
        // At the knee, the elasticity of latency n·D′/D is exactly one half.
        let slope = 0.1 + 0.01 * (2 * knee - 1)
        #expect(abs(knee * slope / retrograde.slowdown(at: knee) - 0.5) < 1e-9)
        #expect(knee < peak)

        let saturating = ScalabilityModel(singleClientThroughput: 1, contention: 0.2, coherency: 0)
        #expect(saturating.peakConcurrency == nil)
        #expect(saturating.kneeConcurrency == 4)

        let linear = ScalabilityModel(singleClientThroughput: 1, contention: 0, coherency: 0)
        #expect(linear.kneeConcurrency == nil)
        #expect(linear.peakConcurrency == nil)
    }
}
