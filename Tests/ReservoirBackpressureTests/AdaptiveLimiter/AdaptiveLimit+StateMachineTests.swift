import DequeModule
import Testing

@testable import ReservoirBackpressure

@Suite("Adaptive limit state machine")
struct AdaptiveLimitStateMachineTests {
    static let ms = 1e6

    @Test("AIMD adds one per good sample while saturated, and backs off on a slow or dropped one")
    func aimd() {
        var machine = AdaptiveLimitStateMachine(
            policy: .aimd(initialLimit: 10, latencyThreshold: .milliseconds(100), backoffRatio: 0.5)
        )
        #expect(machine.sampleRecorded(latency: 10 * Self.ms, inFlight: 10, dropped: false) == 11)
        #expect(machine.sampleRecorded(latency: 200 * Self.ms, inFlight: 11, dropped: false) == 5)
        #expect(machine.sampleRecorded(latency: 10 * Self.ms, inFlight: 5, dropped: true) == 2)
    }

    @Test("AIMD does not grow a limit that is not used")
    func aimdAppLimited() {
        var machine = AdaptiveLimitStateMachine(policy: .aimd(initialLimit: 10, latencyThreshold: .milliseconds(100)))
        for _ in 0..<100 { _ = machine.sampleRecorded(latency: Self.ms, inFlight: 2, dropped: false) }
        #expect(machine.limit == 10)
    }

    @Test("gradient shrinks the limit when latency rises above tolerance × baseline")
    func gradientShrinks() {
        var machine = AdaptiveLimitStateMachine(
            policy: .gradient(initialLimit: 40, tolerance: 1.5, smoothing: 1, windowSize: 1)
        )
        _ = machine.sampleRecorded(latency: 10 * Self.ms, inFlight: 40, dropped: false)  // baseline 10 ms, grows
        let grown = machine.limit
        #expect(grown > 40)
        _ = machine.sampleRecorded(latency: 30 * Self.ms, inFlight: grown, dropped: false)  // gradient 0.5
        #expect(machine.limit == grown / 2)
    }

    @Test("gradient: under sustained overload the baseline does not creep up and the limit does not grow")
    func gradientDriftGuards() {
        var machine = AdaptiveLimitStateMachine(
            policy: .gradient(initialLimit: 20, minLimit: 4, tolerance: 1.5, smoothing: 0.5, windowSize: 10)
        )
        for _ in 0..<10 { _ = machine.sampleRecorded(latency: 10 * Self.ms, inFlight: 5, dropped: false) }
        #expect(machine.baseline == 10 * Self.ms)
        // 1000 windows of saturated overload at a latency of 1.25 × baseline (gradient 1.2 → clamped 1 in
        // Gradient2 terms, where its queue headroom made the limit grow without bound).
        var limits: [Int] = []
        for _ in 0..<1000 {
            for _ in 0..<10 {
                _ = machine.sampleRecorded(latency: 16 * Self.ms, inFlight: machine.limit, dropped: false)
            }
            limits.append(machine.limit)
        }
        #expect(machine.baseline == 10 * Self.ms)
        #expect(limits.last! <= 20)
        #expect(limits.max()! <= 20)
    }

    @Test("gradient: the baseline follows a real latency change when the service is lightly loaded")
    func gradientBaselineRisesWhenIdle() {
        var machine = AdaptiveLimitStateMachine(policy: .gradient(initialLimit: 20, windowSize: 5))
        for _ in 0..<5 { _ = machine.sampleRecorded(latency: 10 * Self.ms, inFlight: 2, dropped: false) }
        for _ in 0..<500 { _ = machine.sampleRecorded(latency: 20 * Self.ms, inFlight: 2, dropped: false) }
        #expect(machine.baseline! > 19 * Self.ms)
    }

    @Test("pool-wait mode backs off when the mean wait exceeds the target and grows when saturated and fast")
    func poolWait() {
        var machine = AdaptiveLimitStateMachine(
            policy: .poolWaitTime(target: .milliseconds(5), initialLimit: 20, backoffRatio: 0.5, windowSize: 2)
        )
        #expect(machine.poolWaitRecorded(wait: 10 * Self.ms, inFlight: 20) == nil)
        #expect(machine.poolWaitRecorded(wait: 10 * Self.ms, inFlight: 20) == 10)  // × max(0.5, 5/10)
        _ = machine.poolWaitRecorded(wait: 0, inFlight: 10)
        #expect(machine.poolWaitRecorded(wait: 0, inFlight: 10) == 11)
        _ = machine.poolWaitRecorded(wait: 0, inFlight: 1)
        #expect(machine.poolWaitRecorded(wait: 0, inFlight: 1) == nil)  // not saturated: no growth
    }
}

/// A service with `workers` that each take `serviceTime`, behind a limiter: a deterministic discrete-event
/// simulation. Requests arrive every `interArrival`; a request the limiter refuses is shed at once.
struct OverloadSimulation {
    var workers = 4
    var serviceTime = 10.0 * 1e6
    var interArrival = 1.25 * 1e6  // 800/s against a capacity of 400/s
    var duration = 20.0 * 1e9

    struct Result {
        var latencies: [Double]  // of requests admitted in the second half, in ms
        var completed: Int
        var p99: Double {
            let sorted = latencies.sorted()
            return sorted.isEmpty ? 0 : sorted[Int(Double(sorted.count - 1) * 0.99)]
        }
    }

    /// - Parameters:
    ///   - limit: The fixed limit, or the adaptive policy's initial limit.
    ///   - policy: An adaptive policy, or `nil` for a fixed limit.
    ///   - poolSignal: Feed the server's queue wait to the policy as a pool wait.
    func run(limit: Int, policy: AdaptiveLimitPolicy?, poolSignal: Bool = false) -> Result {
        var machine = ConcurrencyLimiterStateMachine<Int>(limit: limit, maxQueueLength: 0)
        var adaptive = policy.map(AdaptiveLimitStateMachine.init)
        var serverQueue = Deque<(admittedAt: Double, inFlight: Int)>()
        var busy = 0
        var completions: [(at: Double, admittedAt: Double, queuedFor: Double, inFlight: Int)] = []
        var nextArrival = 0.0
        var result = Result(latencies: [], completed: 0)

        func start(_ request: (admittedAt: Double, inFlight: Int), at now: Double) {
            busy += 1
            let entry = (
                at: now + serviceTime, admittedAt: request.admittedAt, queuedFor: now - request.admittedAt,
                inFlight: request.inFlight
            )
            let index = completions.firstIndex { $0.at > entry.at } ?? completions.endIndex
            completions.insert(entry, at: index)
        }

        while nextArrival < duration || !completions.isEmpty {
            if let completion = completions.first, completion.at <= nextArrival || nextArrival >= duration {
                completions.removeFirst()
                let now = completion.at
                busy -= 1
                result.completed += 1
                let latency = now - completion.admittedAt
                if completion.admittedAt >= duration / 2 { result.latencies.append(latency / 1e6) }
                _ = machine.released()
                if var state = adaptive {
                    let newLimit =
                        poolSignal
                        ? state.poolWaitRecorded(wait: completion.queuedFor, inFlight: completion.inFlight)
                        : state.sampleRecorded(latency: latency, inFlight: completion.inFlight, dropped: false)
                    if poolSignal {
                        _ = state.sampleRecorded(latency: latency, inFlight: completion.inFlight, dropped: false)
                    }
                    if let newLimit { _ = machine.limitChanged(to: newLimit) }
                    adaptive = state
                }
                if let next = serverQueue.popFirst() { start(next, at: now) }
            } else {
                let now = nextArrival
                nextArrival += interArrival
                guard case .granted = machine.acquire() else { continue }
                let request = (admittedAt: now, inFlight: machine.inFlight)
                if busy < workers { start(request, at: now) } else { serverQueue.append(request) }
            }
        }
        return result
    }
}

@Suite("Adaptive limiter under overload")
struct AdaptiveOverloadTests {
    @Test("at twice the capacity, the gradient limiter keeps latency bounded while a fixed high limit does not")
    func gradientVersusFixed() {
        let simulation = OverloadSimulation()
        let fixed = simulation.run(limit: 100, policy: nil)
        let adaptive = simulation.run(limit: 100, policy: .gradient(initialLimit: 100, maxLimit: 200))
        // Fixed: 96 requests queue in the server → ~250 ms. Adaptive: a few service times (10 ms each) at worst.
        #expect(fixed.p99 > 200)
        #expect(adaptive.p99 <= 40)
        // And it still uses the capacity: at least 90% of what four workers can do in 20 s.
        #expect(Double(adaptive.completed) >= 0.9 * 20 * 400)
    }

    @Test("AIMD with a latency threshold keeps latency bounded too")
    func aimdVersusFixed() {
        let simulation = OverloadSimulation()
        let adaptive = simulation.run(limit: 100, policy: .aimd(initialLimit: 100, latencyThreshold: .milliseconds(25)))
        #expect(adaptive.p99 <= 60)
        #expect(Double(adaptive.completed) >= 0.9 * 20 * 400)
    }

    @Test("the pool-wait mode keeps the queue wait near its target")
    func poolWaitVersusFixed() {
        let simulation = OverloadSimulation()
        let adaptive = simulation.run(
            limit: 100,
            policy: .poolWaitTime(target: .milliseconds(5), initialLimit: 100),
            poolSignal: true
        )
        #expect(adaptive.p99 < 30)
        #expect(Double(adaptive.completed) >= 0.9 * 20 * 400)
    }
}
