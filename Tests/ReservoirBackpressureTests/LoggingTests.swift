import Logging
import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Logging")
struct LoggingTests {
    @Test("an adaptive limit change is logged at debug with the new limit")
    func adaptiveLimitChange() async throws {
        let logs = TestLogs()
        let limiter = try AdaptiveConcurrencyLimiter(
            .aimd(initialLimit: 4, latencyThreshold: .seconds(1), backoffRatio: 0.5),
            clock: ManualClock(),
            label: "db",
            logger: logs.logger()
        )
        try await limiter.acquire().release(outcome: .dropped)
        let entry = try #require(logs.entries.first { $0.message == "Adaptive limit changed" })
        #expect(entry.level == .debug)
        #expect(entry.metadata["backpressure.limit"] == "2")
        #expect(entry.metadata["backpressure.limiter"] == "db")
    }

    @Test("cancelling a channel logs how many elements were dropped")
    func channelCancel() async throws {
        let logs = TestLogs()
        var configuration = BoundedChannel<Int>.Configuration(capacity: 4)
        configuration.logger = logs.logger()
        let channel = try BoundedChannel(configuration: configuration)
        try await channel.send(1)
        try await channel.send(2)
        channel.cancel()
        let entry = try #require(logs.entries.first { $0.message == "Channel cancelled" })
        #expect(entry.metadata["backpressure.dropped"] == "2")
    }
}
