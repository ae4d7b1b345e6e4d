import Foundation
import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Bad input: permits below 1 are refused, naming the argument; errors describe themselves")
struct BadInputTests {
    @Test("a token bucket refuses zero or negative permits on every entry point and its bucket stays intact",
          arguments: [0, -1, Int.min])
    func rateLimiter(permits: Int) async throws {
        let clock = ManualClock()
        let limiter = try RateLimiter(.tokenBucket(rate: 1, burst: 2), clock: clock)
        let error = try #require(throws: BackpressureError.self) { try limiter.tryAcquire(permits: permits) }
        #expect(error.code == .invalidArgument)
        #expect(error.field == "permits")
        #expect(throws: BackpressureError(.invalidArgument, message: "")) {
            try limiter.tryAcquire(permits: permits, at: clock.now)
        }
        #expect(throws: BackpressureError(.invalidArgument, message: "")) { try limiter.reserve(permits: permits) }
        await #expect(throws: BackpressureError(.invalidArgument, message: "")) {
            try await limiter.acquire(permits: permits)
        }
        await #expect(throws: BackpressureError(.invalidArgument, message: "")) {
            try await limiter.acquire(permits: permits, timeout: .seconds(1))
        }
        // The burst of 2 is still there, and no more.
        #expect(try limiter.tryAcquire(permits: 2))
        #expect(try !limiter.tryAcquire(permits: 1))
    }

    @Test("a sliding window refuses zero or negative permits", arguments: [0, -3])
    func slidingWindow(permits: Int) async throws {
        let limiter = try SlidingWindowLimiter(limit: 2, window: .seconds(1), clock: ManualClock())
        #expect(throws: BackpressureError(.invalidArgument, message: "")) { try limiter.tryAcquire(permits: permits) }
        await #expect(throws: BackpressureError(.invalidArgument, message: "")) {
            try await limiter.acquire(permits: permits)
        }
        #expect(try limiter.tryAcquire(permits: 2))
        #expect(try !limiter.tryAcquire(permits: 1))
    }

    @Test("errors have a localized description that says what went wrong")
    func localizedDescriptions() throws {
        let error: any Error = BackpressureError(.queueFull, message: "All slots are taken.")
        #expect(error.localizedDescription.contains("All slots are taken."))
        let sendError: any Error = BoundedChannel<Int>.SendError(
            element: 1, error: BackpressureError(.channelFull, message: "full"))
        #expect(sendError.localizedDescription.contains("full"))
    }

    @Test("an error's text names the code, the message and the field, not the source file that threw it")
    func descriptionHasNoSourcePath() {
        let error = BackpressureError.invalid("capacity", "The capacity must be at least 1 (got 0).")
        #expect(
            error.description
                == "BackpressureError.invalidConfiguration: The capacity must be at least 1 (got 0). (field: capacity)"
        )
        #expect(error.file.hasSuffix("BadInputTests.swift"))
        #expect(error.line > 0)
    }
}
