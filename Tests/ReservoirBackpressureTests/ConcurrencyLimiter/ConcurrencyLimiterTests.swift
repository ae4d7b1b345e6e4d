import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Concurrency limiter")
struct ConcurrencyLimiterTests {
    @Test("at most the limit run at once; the queue is FIFO; a full queue rejects at once")
    func bulkhead() async throws {
        let metrics = ObservedMetrics()
        let limiter = try ConcurrencyLimiter(limit: 1, maxQueueLength: 2, clock: ManualClock(), metricsFactory: metrics)
        let first = try await limiter.acquire()
        let order = Collector<Int>()
        let waiters = (0..<2).map { index in
            Task {
                let permit = try await limiter.acquire()
                order.append(index)
                permit.release()
            }
        }
        await metrics.waitForLimiterWaiters(2)
        #expect(limiter.statistics.waiting == 2)
        await #expect(throws: BackpressureError(.queueFull, message: "")) { _ = try await limiter.acquire() }
        first.release()
        for waiter in waiters { try await waiter.value }
        #expect(order.values.sorted() == [0, 1])
        #expect(limiter.statistics.inFlight == 0)
    }

    @Test("a waiter times out on the injected clock")
    func timeout() async throws {
        let clock = ManualClock()
        let limiter = try ConcurrencyLimiter(limit: 1, clock: clock)
        let held = try await limiter.acquire()
        let waiter = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                _ = try await limiter.acquire(timeout: .seconds(2))
                return nil
            } catch {
                return error.code
            }
        }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(2))
        #expect(await waiter.value == .timedOut)
        #expect(limiter.statistics.waiting == 0)
        held.release()
    }

    @Test("a limiter caller whose task is already cancelled fails at once instead of queueing")
    func limiterCancelledBeforeSuspend() async throws {
        let metrics = ObservedMetrics()
        let limiter = try ConcurrencyLimiter(limit: 1, clock: ManualClock(), metricsFactory: metrics)
        let held = try await limiter.acquire()
        let waiter = Task { () -> BackpressureError.Code? in
            withUnsafeCurrentTask { $0?.cancel() }
            do throws(BackpressureError) {
                _ = try await limiter.acquire()
                return nil
            } catch {
                return error.code
            }
        }
        #expect(await waiter.value == .cancelled)
        #expect(limiter.statistics.waiting == 0)
        held.release()
    }

    @Test("a cancelled waiter leaves the queue with cancelled")
    func cancellation() async throws {
        let metrics = ObservedMetrics()
        let limiter = try ConcurrencyLimiter(limit: 1, clock: ManualClock(), metricsFactory: metrics)
        let held = try await limiter.acquire()
        let waiter = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                _ = try await limiter.acquire()
                return nil
            } catch {
                return error.code
            }
        }
        await metrics.waitForLimiterWaiters(1)
        #expect(limiter.statistics.waiting == 1)
        waiter.cancel()
        #expect(await waiter.value == .cancelled)
        held.release()
        #expect(limiter.statistics.inFlight == 0)
    }

    struct Boom: Error {}

    @Test("withPermit returns the permit when the body throws, and a dropped permit returns itself")
    func withPermitReturnsPermit() async throws {
        let limiter = try ConcurrencyLimiter(limit: 1, clock: ManualClock())
        await #expect(throws: Boom.self) { try await limiter.withPermit { throw Boom() } }
        #expect(limiter.statistics.inFlight == 0)
        do { _ = try await limiter.acquire() }
        #expect(limiter.statistics.inFlight == 0)
        #expect(try await limiter.withPermit { 42 } == 42)
    }

    @Test("with a deadline, a call whose predicted wait ends too late is shed at once")
    func shedding() async throws {
        let clock = ManualClock()
        let limiter = try ConcurrencyLimiter(limit: 1, clock: clock)
        // Teach it that an operation holds the slot for 100 ms.
        let permit = try await limiter.acquire()
        clock.advance(by: .milliseconds(100))
        permit.release()
        #expect(limiter.statistics.meanHoldTime == .milliseconds(100))

        let held = try await limiter.acquire()
        await #expect(throws: BackpressureError(.shed, message: "")) {
            _ = try await limiter.acquire(deadline: clock.now.advanced(by: .milliseconds(50)))
        }
        #expect(clock.sleeperCount == 0)
        let waiter = Task { try await limiter.acquire(deadline: clock.now.advanced(by: .milliseconds(150))).release() }
        await clock.waitForSleepers(1)
        held.release()
        try await waiter.value
    }

    @Test("shutdown fails waiters and later calls")
    func shutdown() async throws {
        let metrics = ObservedMetrics()
        let limiter = try ConcurrencyLimiter(limit: 1, clock: ManualClock(), metricsFactory: metrics)
        let held = try await limiter.acquire()
        let waiter = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                _ = try await limiter.acquire()
                return nil
            } catch {
                return error.code
            }
        }
        await metrics.waitForLimiterWaiters(1)
        #expect(limiter.statistics.waiting == 1)
        limiter.shutdown()
        #expect(await waiter.value == .limiterShutDown)
        await #expect(throws: BackpressureError(.limiterShutDown, message: "")) { _ = try await limiter.acquire() }
        held.release()
    }

    @Test("invalid settings name the field", arguments: [(0, 1, "limit"), (1, -1, "maxQueueLength")])
    func invalid(limit: Int, queue: Int, field: String) {
        do {
            _ = try ConcurrencyLimiter(limit: limit, maxQueueLength: queue, clock: ManualClock())
            Issue.record("expected an error")
        } catch {
            #expect(error.field == field)
        }
    }
}
