import ReservoirTestKit
import Testing

@testable import Reservoir

/// A closed loop of clients in front of a self-sizing pool whose resource follows the Universal Scalability Law: a
/// lease granted while `n` are leased takes `D(n)/λ` (± 20 % jitter), `D(n) = 1 + σ(n − 1) + κn(n − 1)`, so the
/// throughput at a fixed size `n` is `λn / D(n)`. Time is virtual: events run in order of their completion time, and
/// the estimator gets each release with that time as `now`.
struct USLPoolSimulation {
    struct Curve: Sendable, CustomTestStringConvertible {
        var contention: Double
        var coherency: Double
        var singleThroughput = 100.0

        /// A curve that peaks at `peak` connections: κ = (1 − σ)/peak².
        static func peaking(at peak: Double, contention: Double = 0.02) -> Curve {
            Curve(contention: contention, coherency: (1 - contention) / (peak * peak))
        }

        func slowdown(_ n: Int) -> Double {
            let n = Double(n)
            return 1 + contention * (n - 1) + coherency * n * (n - 1)
        }

        func throughput(_ n: Int) -> Double { singleThroughput * Double(n) / slowdown(n) }

        /// The fixed size with the most throughput within `1...maximum`: the best fixed pool for a saturating load.
        func bestFixedSize(maximum: Int) -> Int {
            (1...maximum).max { throughput($0) < throughput($1) }!
        }

        var testDescription: String { "peak at \(bestFixedSize(maximum: 1_000))" }
    }

    var curve: Curve
    let clients: Int
    var estimator: PoolSizeEstimator
    var now = 0.0
    var random = SeededRandomNumberGenerator(seed: 42)  // every run sees the same jitter
    /// Completion time and start time of each lease in flight.
    var inFlight: [(ends: Double, started: Double)] = []
    var waiting: Int
    /// The effective maximum after each change, with its time.
    var limits: [(time: Double, limit: Int)] = []
    /// The time of each release.
    var releases: [Double] = []

    init(curve: Curve, clients: Int = 200, maximumSize: Int = 64, policy: SelfSizingPolicy = .throughputSeeking()) {
        self.curve = curve
        self.clients = clients
        self.estimator = PoolSizeEstimator(policy: policy, minimumSize: 0, maximumSize: maximumSize)
        self.waiting = clients
        self.limits = [(0, estimator.limit)]
        grantWhilePossible()
    }

    mutating func grantWhilePossible() {
        while waiting > 0, inFlight.count < estimator.limit {
            waiting -= 1
            let service = curve.slowdown(inFlight.count + 1) / curve.singleThroughput
                * Double.random(in: 0.8...1.2, using: &random)
            inFlight.append((now + service, now))
        }
    }

    /// Runs until `end` (virtual seconds).
    mutating func run(until end: Double) {
        while let index = inFlight.indices.min(by: { inFlight[$0].ends < inFlight[$1].ends }),
            inFlight[index].ends <= end
        {
            let lease = inFlight.remove(at: index)
            now = lease.ends
            releases.append(now)
            // Every client not holding a lease is waiting; the one releasing asks again at once.
            if let limit = estimator.leaseReleased(
                heldFor: .seconds(now - lease.started),
                waiting: waiting,
                now: .seconds(now)
            ) {
                limits.append((now, limit))
            }
            waiting += 1
            grantWhilePossible()
        }
        now = end
    }

    /// The time-weighted mean effective maximum over `from...to`.
    func meanLimit(from: Double, to: Double) -> Double {
        var total = 0.0
        for (index, change) in limits.enumerated() {
            let start = max(change.time, from)
            let stop = min(index + 1 < limits.count ? limits[index + 1].time : to, to)
            if stop > start { total += Double(change.limit) * (stop - start) }
        }
        return total / (to - from)
    }

    /// Releases per second over `from...to`.
    func throughput(from: Double, to: Double) -> Double {
        Double(releases.filter { $0 > from && $0 <= to }.count) / (to - from)
    }
}

@Suite("PoolSizeEstimator: a simulated USL resource")
struct PoolSizeEstimatorTests {
    static let curves: [USLPoolSimulation.Curve] = [.peaking(at: 8), .peaking(at: 16), .peaking(at: 32)]

    @Test("the effective maximum settles within ±25 % of the best fixed size", arguments: curves)
    func settles(curve: USLPoolSimulation.Curve) {
        var simulation = USLPoolSimulation(curve: curve)
        simulation.run(until: 60)
        let best = Double(curve.bestFixedSize(maximum: 64))
        let mean = simulation.meanLimit(from: 30, to: 60)
        #expect(abs(mean / best - 1) <= 0.25, "settled at \(mean), best fixed size \(best)")
        // It oscillates around that size by a step or two; what that costs is throughput, which stays within 10 % of
        // the best fixed size's.
        let throughput = simulation.throughput(from: 30, to: 60)
        let bestThroughput = curve.throughput(Int(best))
        #expect(
            throughput >= 0.9 * bestThroughput,
            "\(throughput)/s against \(bestThroughput)/s at the best fixed size"
        )
    }

    @Test("the effective maximum follows the curve when it changes mid-run, down and up",
          arguments: [(32.0, 8.0), (8.0, 32.0)])
    func followsAChange(from: Double, to: Double) {
        var simulation = USLPoolSimulation(curve: .peaking(at: from))
        simulation.run(until: 40)
        let before = simulation.meanLimit(from: 20, to: 40)
        #expect(abs(before / from - 1) <= 0.25, "before the change: \(before), best \(from)")
        simulation.curve = .peaking(at: to)
        simulation.run(until: 100)
        let after = simulation.meanLimit(from: 70, to: 100)
        #expect(abs(after / to - 1) <= 0.25, "after the change: \(after), best \(to)")
    }

    @Test("a window in which nobody waited for the limit changes nothing")
    func unsaturatedWindowsDoNotMove() {
        var estimator = PoolSizeEstimator(
            policy: .throughputSeeking(minimumReleasesPerWindow: 10, initialSize: 4),
            minimumSize: 0,
            maximumSize: 64
        )
        var now = Duration.zero
        for _ in 0..<1_000 {
            now += .milliseconds(1)
            #expect(estimator.leaseReleased(heldFor: .microseconds(500), waiting: 0, now: now) == nil)
        }
        #expect(estimator.limit == 4)
        #expect(estimator.lastWindow?.limitBound == false)
    }

    @Test("a change inside the noise of the hold times is not acted on: the window grows instead")
    func noiseExtendsTheWindow() {
        var estimator = PoolSizeEstimator(
            policy: .throughputSeeking(minimumReleasesPerWindow: 200, initialSize: 4),
            minimumSize: 0,
            maximumSize: 64
        )
        var now = Duration.zero
        var release = 0
        func feed(_ count: Int) -> [Int] {
            var changes: [Int] = []
            for _ in 0..<count {
                now += .milliseconds(1)
                release += 1
                // Hold times alternate between 10 µs and 10 ms: a coefficient of variation near 1.
                let held: Duration = release.isMultiple(of: 2) ? .milliseconds(10) : .microseconds(10)
                if let limit = estimator.leaseReleased(heldFor: held, waiting: 5, now: now) { changes.append(limit) }
            }
            return changes
        }
        // The first window has nothing to compare with: it moves up by a quarter (4 → 5); the next one settles.
        #expect(feed(1 + 200) == [5])
        #expect(feed(200) == [])
        // At 5 throughput is unchanged (+0 % for +25 % size: flat), but the noise (2 × √2 × 1/√200 ≈ 20 %)
        // exceeds the threshold (0.12 × 25 % = 3 %): no move, a window twice as long.
        #expect(feed(200) == [])
        #expect(estimator.limit == 5)
        #expect(estimator.windowScale == 2)
    }

    @Test("a flat curve walks the limit down: connections that buy no throughput are given up")
    func flatCurveShrinks() {
        var estimator = PoolSizeEstimator(
            policy: .throughputSeeking(minimumReleasesPerWindow: 100, initialSize: 40),
            minimumSize: 2,
            maximumSize: 64
        )
        var now = Duration.zero
        // Releases every 100 µs whatever the limit, with callers always waiting.
        for _ in 0..<200_000 {
            now += .microseconds(100)
            _ = estimator.leaseReleased(heldFor: .milliseconds(1), waiting: 10, now: now)
        }
        #expect(estimator.limit <= 3)
    }

    @Test("the limit stays within minimumSize...maximumSize and starts at the initial size")
    func bounds() {
        let estimator = PoolSizeEstimator(policy: .throughputSeeking(), minimumSize: 3, maximumSize: 10)
        #expect(estimator.limit == 3)
        let started = PoolSizeEstimator(policy: .throughputSeeking(initialSize: 7), minimumSize: 3, maximumSize: 10)
        #expect(started.limit == 7)
        #expect(SelfSizingPolicy.throughputSeeking(initialSize: 11).problem(minimumSize: 3, maximumSize: 10)?.field
            == "selfSizing.initialSize")
        #expect(SelfSizingPolicy.throughputSeeking(minimumElasticity: 0).problem(minimumSize: 0, maximumSize: 10)?
            .field == "selfSizing.minimumElasticity")
    }
}
