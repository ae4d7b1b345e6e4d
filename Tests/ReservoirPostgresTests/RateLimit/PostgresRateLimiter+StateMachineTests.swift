import Testing

@testable import ReservoirPostgres

@Suite("PostgresRateLimiter's local batch cache")
struct PostgresRateLimiterStateMachineTests {
    let second = 1e9

    func machine(batchSize: Int = 10, lifetime: Double = 1e9) -> PostgresRateLimiterStateMachine {
        PostgresRateLimiterStateMachine(batchSize: batchSize, cachedPermitLifetime: lifetime)
    }

    @Test("an empty cache asks the bucket for the request up to a whole batch")
    func emptyCacheFetchesABatch() {
        var machine = machine()
        #expect(machine.acquireRequested(permits: 3, now: 0, maxWait: 0) == .fetch(minimum: 3, maximum: 10))
    }

    @Test("without batching every request goes to the bucket for exactly its permits")
    func batchOfOneNeverCaches() {
        var machine = machine(batchSize: 1)
        #expect(machine.acquireRequested(permits: 1, now: 0, maxWait: nil) == .fetch(minimum: 1, maximum: 1))
        machine.batchGranted(granted: 1, requested: 1, readyAt: 0, now: 0)
        #expect(machine.cached == nil)
        #expect(machine.acquireRequested(permits: 1, now: 0, maxWait: nil) == .fetch(minimum: 1, maximum: 1))
    }

    @Test("the surplus of a batch serves the next requests without a round trip, then the bucket is asked again")
    func surplusServesLaterRequests() {
        var machine = machine(batchSize: 4)
        _ = machine.acquireRequested(permits: 1, now: 0, maxWait: 0)
        machine.batchGranted(granted: 4, requested: 1, readyAt: 0, now: 0)
        #expect(machine.cached == .init(count: 3, usableFrom: 0, usableUntil: second))
        #expect(machine.acquireRequested(permits: 2, now: 10, maxWait: 0) == .granted(readyAt: 10))
        #expect(machine.acquireRequested(permits: 1, now: 20, maxWait: 0) == .granted(readyAt: 20))
        #expect(machine.cached == nil)
        #expect(machine.cachedGrants == 3)
        #expect(machine.acquireRequested(permits: 1, now: 30, maxWait: 0) == .fetch(minimum: 1, maximum: 4))
    }

    @Test("a request larger than the cache leaves the cache alone and asks the bucket")
    func largerRequestFetches() {
        var machine = machine(batchSize: 4)
        machine.batchGranted(granted: 3, requested: 1, readyAt: 0, now: 0)
        #expect(machine.acquireRequested(permits: 3, now: 1, maxWait: 0) == .fetch(minimum: 3, maximum: 4))
        #expect(machine.cached?.count == 2)
    }

    @Test("permits of a batch that is ready later wait for it, and are refused to a caller who cannot wait")
    func futureBatchRespectsMaxWait() {
        var machine = machine(batchSize: 5)
        machine.batchGranted(granted: 5, requested: 1, readyAt: 500, now: 0)
        #expect(machine.acquireRequested(permits: 1, now: 100, maxWait: 0) == .fetch(minimum: 1, maximum: 5))
        #expect(machine.acquireRequested(permits: 1, now: 100, maxWait: 300) == .fetch(minimum: 1, maximum: 5))
        #expect(machine.acquireRequested(permits: 1, now: 100, maxWait: 400) == .granted(readyAt: 500))
        #expect(machine.acquireRequested(permits: 1, now: 100, maxWait: nil) == .granted(readyAt: 500))
        #expect(machine.cachedPermits(now: 100) == 0)
        #expect(machine.cachedPermits(now: 500) == 2)
    }

    @Test("cached permits expire a lifetime after they became ready and are counted as lost")
    func cachedPermitsExpire() {
        var machine = machine(batchSize: 5, lifetime: 1000)
        machine.batchGranted(granted: 5, requested: 1, readyAt: 100, now: 0)
        #expect(machine.acquireRequested(permits: 1, now: 1100, maxWait: 0) == .granted(readyAt: 1100))
        #expect(machine.acquireRequested(permits: 1, now: 1101, maxWait: 0) == .fetch(minimum: 1, maximum: 5))
        #expect(machine.cached == nil)
        #expect(machine.expiredPermits == 3)
    }

    @Test("two surpluses merge: usable from the later ready time, for a lifetime after it")
    func surplusesMerge() {
        var machine = machine(batchSize: 5, lifetime: 1000)
        machine.batchGranted(granted: 5, requested: 2, readyAt: 100, now: 0)
        machine.batchGranted(granted: 4, requested: 1, readyAt: 300, now: 50)
        #expect(machine.cached == .init(count: 6, usableFrom: 300, usableUntil: 1300))
    }

    @Test("a surplus arriving after the cache expired replaces it, and the old permits count as lost")
    func surplusReplacesExpiredCache() {
        var machine = machine(batchSize: 5, lifetime: 1000)
        machine.batchGranted(granted: 3, requested: 1, readyAt: 0, now: 0)
        machine.batchGranted(granted: 2, requested: 1, readyAt: 2000, now: 2000)
        #expect(machine.cached == .init(count: 1, usableFrom: 2000, usableUntil: 3000))
        #expect(machine.expiredPermits == 2)
    }
}

@Suite("PostgresRateLimiter's reading of the bucket's reply")
struct PostgresRateLimitReplyTests {
    // 10 permits per second (T = 0.1 s), burst 5 (b·T = 0.5 s).
    let interval = 0.1
    let burstWindow = 0.5

    @Test("granted permits inside the burst are ready at once")
    func grantedInsideBurst() {
        let reply = PostgresRateLimitReply(theoreticalArrivalTime: 100.3, checkedAt: 100, granted: 3)
        #expect(reply.decision(minimum: 1, interval: interval, burstWindow: burstWindow) == .granted(count: 3, delay: 0))
    }

    @Test("granted permits beyond the burst are ready when the bucket's time minus the burst comes")
    func grantedBeyondBurstWaits() throws {
        let reply = PostgresRateLimitReply(theoreticalArrivalTime: 100.75, checkedAt: 100, granted: 2)
        guard case .granted(let count, let delay) = reply.decision(
            minimum: 1, interval: interval, burstWindow: burstWindow)
        else { Issue.record("expected a grant"); return }
        #expect(count == 2)
        #expect(abs(delay - 0.25) < 1e-9)
    }

    @Test("a rejection says when the minimum would be ready")
    func rejectionRetryAfter() {
        let reply = PostgresRateLimitReply(theoreticalArrivalTime: 100.5, checkedAt: 100, granted: 0)
        guard case .rejected(let retryAfter) = reply.decision(
            minimum: 2, interval: interval, burstWindow: burstWindow)
        else { Issue.record("expected a rejection"); return }
        #expect(abs(retryAfter - 0.2) < 1e-9)
    }
}
