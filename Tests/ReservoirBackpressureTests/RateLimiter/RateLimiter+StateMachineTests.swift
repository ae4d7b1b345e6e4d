import Testing

@testable import ReservoirBackpressure

@Suite("Rate limiter state machine")
struct RateLimiterStateMachineTests {
    static let second = 1e9

    /// Reserves one permit after another as a caller that sleeps until each is ready; returns the waits in seconds.
    func waits(_ machine: inout RateLimiterStateMachine, count: Int, permits: Int = 1, now: inout Double) -> [Double] {
        (0..<count).map { _ in
            guard case .granted(let readyAt, _) = machine.reserve(permits: permits, now: now, maxWait: nil) else {
                Issue.record("expected a grant")
                return -1
            }
            let wait = readyAt - now
            now = readyAt
            return (wait / Self.second * 100).rounded() / 100
        }
    }

    @Test("a token bucket spaces permits by 1/rate once the burst is spent")
    func tokenBucketSpacing() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 5, burst: 1), now: 0)
        var now = 0.0
        #expect(waits(&machine, count: 5, now: &now) == [0, 0.2, 0.2, 0.2, 0.2])
    }

    @Test("a full bucket lets the burst through at once")
    func burst() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 10, burst: 5), now: 0)
        var now = 0.0
        #expect(waits(&machine, count: 7, now: &now) == [0, 0, 0, 0, 0, 0.1, 0.1])
    }

    @Test("idle time refills the bucket up to the burst, not beyond")
    func refill() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 10, burst: 3), now: 0)
        var now = 0.0
        _ = waits(&machine, count: 3, now: &now)
        now += 10 * Self.second
        #expect(waits(&machine, count: 5, now: &now) == [0, 0, 0, 0.1, 0.1])
    }

    @Test("multi-permit requests pay for every permit")
    func multiPermit() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 10, burst: 4), now: 0)
        var now = 0.0
        #expect(waits(&machine, count: 3, permits: 4, now: &now) == [0, 0.4, 0.4])
    }

    @Test("a request that would wait past the maximum changes nothing")
    func maxWait() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 1, burst: 1), now: 0)
        #expect(machine.reserve(permits: 1, now: 0, maxWait: 0) == .granted(readyAt: 0, cost: Self.second))
        #expect(machine.reserve(permits: 1, now: 0, maxWait: 0.5 * Self.second) == .wouldExceed(readyAt: Self.second))
        #expect(
            machine.reserve(permits: 1, now: 0, maxWait: Self.second)
                == .granted(readyAt: Self.second, cost: Self.second))
    }

    @Test("a request larger than the burst can never succeed")
    func tooMany() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 1, burst: 3), now: 0)
        #expect(machine.reserve(permits: 4, now: 0, maxWait: nil) == .tooMany(limit: 3))
    }

    @Test("a refunded reservation goes to the next caller")
    func refund() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 5, burst: 1), now: 0)
        _ = machine.reserve(permits: 1, now: 0, maxWait: nil)
        guard case .granted(let readyAt, let cost) = machine.reserve(permits: 1, now: 0, maxWait: nil) else {
            Issue.record("expected a grant")
            return
        }
        #expect(readyAt == 0.2 * Self.second)
        machine.refunded(readyAt: readyAt, cost: cost, now: 0.1 * Self.second)
        #expect(
            machine.reserve(permits: 1, now: 0.1 * Self.second, maxWait: nil)
                == .granted(readyAt: 0.2 * Self.second, cost: cost))
    }

    @Test("a reservation whose time has passed is not refunded")
    func lateRefund() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 5, burst: 1), now: 0)
        guard case .granted(let readyAt, let cost) = machine.reserve(permits: 1, now: 0, maxWait: nil) else { return }
        machine.refunded(readyAt: readyAt, cost: cost, now: 0.1 * Self.second)
        #expect(
            machine.reserve(permits: 1, now: 0.1 * Self.second, maxWait: 0) == .wouldExceed(readyAt: 0.2 * Self.second))
    }

    @Test("changing the rate carries the owed permits over")
    func setRate() {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: 10, burst: 1), now: 0)
        var now = 0.0
        _ = waits(&machine, count: 3, now: &now)  // tat = 0.3 s at now = 0.2 s: one permit owed
        machine.policyChanged(to: .tokenBucket(rate: 2, burst: 1), now: now)
        #expect(waits(&machine, count: 2, now: &now) == [0.5, 0.5])
    }

    /// Guava's `RateLimiterTest.testWarmUp`: 2 permits/s, 4 s warm-up, cold factor 3; the same waits.
    @Test("smooth warming up reproduces Guava's warm-up trace")
    func warmUpTrace() {
        var machine = RateLimiterStateMachine(
            policy: .smoothWarmingUp(rate: 2, warmupPeriod: .seconds(4), coldFactor: 3),
            now: 0
        )
        var now = 0.0
        #expect(waits(&machine, count: 8, now: &now) == [0, 1.38, 1.13, 0.88, 0.63, 0.5, 0.5, 0.5])
        now += 0.5 * Self.second  // repay the last acquire
        now += 4 * Self.second  // cold again
        #expect(waits(&machine, count: 8, now: &now) == [0, 1.38, 1.13, 0.88, 0.63, 0.5, 0.5, 0.5])
        now += 0.5 * Self.second
        now += 2 * Self.second  // not cold yet
        #expect(waits(&machine, count: 8, now: &now) == [0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    }

    @Test(
        "callers that wait for their slot achieve the target rate exactly",
        arguments: [(1000.0, 1), (3.0, 1), (250_000.0, 10)]
    )
    func waitingAccuracy(rate: Double, burst: Int) {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: rate, burst: burst), now: 0)
        var now = 0.0
        var granted = 0
        while case .granted(let readyAt, _) = machine.reserve(permits: 1, now: now, maxWait: nil),
            readyAt <= 10 * Self.second
        {
            granted += 1
            now = readyAt
        }
        let ideal = rate * 10
        #expect(Double(granted) >= ideal * 0.999)
        #expect(Double(granted) <= ideal + Double(burst) + 1)
    }

    /// Polling callers lose the time between a slot and their next poll unless the burst absorbs it, which is the
    /// token bucket's definition; with a burst of a few polls' worth the rate holds within 1%.
    @Test(
        "callers that poll with tryAcquire achieve the target rate within 1%",
        arguments: [(1000.0, 5), (1000.0, 50), (37.0, 5), (250_000.0, 100)]
    )
    func accuracy(rate: Double, burst: Int) {
        var machine = RateLimiterStateMachine(policy: .tokenBucket(rate: rate, burst: burst), now: 0)
        // Callers poll every 37 µs for 10 simulated seconds and take whatever is free.
        var granted = 0
        var now = 0.0
        while now < 10 * Self.second {
            while case .granted = machine.reserve(permits: 1, now: now, maxWait: 0) { granted += 1 }
            now += 37_000
        }
        let ideal = rate * 10
        #expect(Double(granted) >= ideal * 0.99)
        #expect(Double(granted) <= ideal + Double(burst) + 1)
    }
}
