import ReservoirBackpressure
import Testing

// The code in docs/backpressure.md and in the DocC articles, compiled and run. Keep them the same.

@Suite("Documentation examples")
struct DocsExamplesTests {
    @Test("bounded channel: producer and consumer")
    func channelBasics() async throws {
        // docs: channel-basics
        let channel = try BoundedChannel<Int>(capacity: 64)
        async let total: Int = {
            var sum = 0
            for try await value in channel { sum += value }
            return sum
        }()
        for value in 1...100 {
            try await channel.send(value)  // suspends while 64 are buffered
        }
        channel.finish()  // consumers drain what is buffered, then the loop ends
        #expect(try await total == 5050)
        // end
    }

    @Test("bounded channel: nothing is lost")
    func channelHandBack() async throws {
        // docs: channel-hand-back
        let channel = try BoundedChannel<String>(capacity: 1)
        try await channel.send("first")
        do {
            try await channel.send("second", timeout: .milliseconds(10))
        } catch {
            // Not enqueued: the element comes back with the reason.
            #expect(error.code == .timedOut)
            #expect(error.element == "second")
        }
        // end
    }

    @Test("bounded channel: policies, watermarks, weights, drop callback")
    func channelConfiguration() async throws {
        // docs: channel-configuration
        // Keep the latest 1000 readings; count what was evicted.
        var latest = BoundedChannel<Double>.Configuration(capacity: 1000)
        latest.overflowPolicy = .dropOldest
        latest.onDrop = { reading, reason in print("dropped \(reading): \(reason)") }
        let readings = try BoundedChannel(configuration: latest)

        // Byte-bounded with hysteresis: producers resume once 1 MiB has drained to 256 KiB.
        var bytes = BoundedChannel<[UInt8]>.Configuration.watermark(low: 256 << 10, high: 1 << 20)
        bytes.weight = { $0.count }
        let chunks = try BoundedChannel(configuration: bytes)
        // end
        try readings.trySend(1.5)
        try await chunks.send([1, 2, 3])
        #expect(chunks.statistics.level == 3)
    }

    @Test("bounded channel: reserve, then send")
    func channelPermit() async throws {
        let channel = try BoundedChannel<[UInt8]>(capacity: 8)
        func expensiveBuild() -> [UInt8] { [1, 2, 3] }
        // docs: channel-permit
        let permit = try await channel.reserve()  // the cancellable wait
        let message = expensiveBuild()  // built only once there is room
        permit.send(message)  // cannot fail
        // end
        #expect(try await channel.receive() == [1, 2, 3])
    }

    @Test("rate limiter")
    func rateLimiter() async throws {
        // docs: rate-limiter
        let limiter = try RateLimiter(.tokenBucket(rate: 100, burst: 10))
        if try limiter.tryAcquire() {
            // within the rate: go
        }
        // Wait for a turn, but fail at once if that would take longer than 50 ms.
        try await limiter.acquire(permits: 2, timeout: .milliseconds(50))
        // end
    }

    @Test("warming-up and sliding-window limiters")
    func otherRateLimiters() throws {
        // docs: warmup-and-window
        let warming = try RateLimiter(.smoothWarmingUp(rate: 50, warmupPeriod: .seconds(10)))
        let perMinute = try SlidingWindowLimiter(limit: 600, window: .seconds(60))
        // end
        #expect(try warming.tryAcquire())
        #expect(try perMinute.tryAcquire())
    }

    @Test("bulkhead")
    func bulkhead() async throws {
        func fetchUser() async throws -> String { "ada" }
        // docs: bulkhead
        let bulkhead = try ConcurrencyLimiter(limit: 8, maxQueueLength: 100)
        let user = try await bulkhead.withPermit(timeout: .seconds(1)) {
            try await fetchUser()
        }
        // end
        #expect(user == "ada")
    }

    @Test("adaptive limiter")
    func adaptive() async throws {
        func query() async throws -> Int { 1 }
        // docs: adaptive
        let limiter = try AdaptiveConcurrencyLimiter(.gradient(initialLimit: 20, maxLimit: 200))
        let rows = try await limiter.withPermit { try await query() }
        print("limit now \(limiter.limit)")
        // end
        #expect(rows == 1)
    }

    @Test("adaptive limiter fed by a pool's wait time")
    func adaptivePool() async throws {
        func acquireFromPool() async throws -> Duration { .milliseconds(1) }
        // docs: adaptive-pool
        let limiter = try AdaptiveConcurrencyLimiter(.poolWaitTime(target: .milliseconds(5)))
        try await limiter.withPermit {
            let waited = try await acquireFromPool()  // e.g. measured around pool.withResource
            limiter.recordPoolWait(waited)
        }
        // end
    }

    @Test("load shedding")
    func shedding() throws {
        // docs: load-shedding
        let shedder = try LoadShedder()
        shedder.recordServiceTime(.milliseconds(20))  // after each request
        do {
            try shedder.check(queueDepth: 40, concurrency: 4, budget: .milliseconds(100))
        } catch {
            #expect(error.code == .shed)  // 41 / 4 × 20 ms = 205 ms > 100 ms: reject now, not after waiting
        }
        // end
    }
}
