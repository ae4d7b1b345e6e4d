import CoreMetrics
import Dispatch
import Logging
@testable import Reservoir
import ReservoirTestKit
import Testing

/// The pool's side effects (log records, metric values) run after its lock is released, so that code they call may
/// use the pool: these tests fail (a read of the statistics stays blocked) when a record is handled under the lock.
@Suite("ResourcePool: side effects run after the lock")
struct PoolEffectsTests {
    @Test(
        "a log handler that reads the pool's statistics while handling a record is never blocked",
        .timeLimit(.minutes(1))
    )
    func logHandlerReadsStatistics() async throws {
        let probe = StatisticsProbe()
        let logs = LogRecorder { probe.readStatistics(handling: $0) }
        let results = try await probe.leaseDiscardAndShutDown(logger: logs.logger, metrics: RecordingMetricsFactory())
        #expect(results.blocked == [])
        // A discarded resource is closed: "closing resource" is logged while the release is being handled.
        #expect(results.completed.contains("closing resource"))
        #expect(results.completed.contains("shutdown completed"))
    }

    @Test(
        "a metrics backend that reads the pool's statistics while recording a value is never blocked",
        .timeLimit(.minutes(1))
    )
    func metricsBackendReadsStatistics() async throws {
        let probe = StatisticsProbe()
        let results = try await probe.leaseDiscardAndShutDown(
            logger: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() },
            metrics: ProbingMetricsFactory(probe: probe)
        )
        #expect(results.blocked == [])
        // Values recorded by an acquire, a release and a close: each was handled while the pool could be read.
        #expect(results.completed.contains("db.client.connection.wait_time"))
        #expect(results.completed.contains("db.client.connection.use_time"))
        #expect(results.completed.contains("db.client.connection.count"))
        #expect(results.completed.contains("reservoir.pool.evictions"))
    }

    @Test("a gauge recorded after the lock ends on the latest value even when an older value reaches the backend last")
    func publishedGaugeEndsOnLatestValue() {
        let backend = InterleavingGaugeFactory()
        let published = PublishedGauge(Gauge(label: "g", dimensions: [], factory: backend), initialValue: 0)
        // Thread A changes the value to 3 under the lock and records after it; while its record is on the way to
        // the backend, thread B changes the value to 2 and records it in full. A's 3 arrives after B's 2.
        #expect(published.publish(3))
        backend.duringFirstRecordOf(3) {
            #expect(published.publish(2))
            published.recordLatest()
        }
        published.recordLatest()
        #expect(backend.values == [0, 2, 3, 2])
        // Publishing the same value again changes nothing and needs no record.
        #expect(!published.publish(2))
    }
}

/// A metrics backend with one gauge that runs a closure inside the first record of a given value, to interleave two
/// recorders deterministically.
private final class InterleavingGaugeFactory: MetricsFactory, Sendable {
    private struct State: Sendable {
        var values: [Int64] = []
        var trigger: (value: Int64, action: @Sendable () -> Void)?
    }

    private let state = LockedBox(State())

    var values: [Int64] { self.state.value.values }

    func duringFirstRecordOf(_ value: Int64, _ action: @escaping @Sendable () -> Void) {
        self.state.mutate { $0.trigger = (value, action) }
    }

    private final class Handler: RecorderHandler, Sendable {
        let factory: InterleavingGaugeFactory

        init(factory: InterleavingGaugeFactory) {
            self.factory = factory
        }

        func record(_ value: Int64) { self.factory.recorded(value) }
        func record(_ value: Double) { self.factory.recorded(Int64(value)) }
    }

    private func recorded(_ value: Int64) {
        let action = self.state.mutate { state -> (@Sendable () -> Void)? in
            guard let trigger = state.trigger, trigger.value == value else { return nil }
            state.trigger = nil
            return trigger.action
        }
        action?()
        self.state.mutate { $0.values.append(value) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        NOOPMetricsHandler.instance
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        NOOPMetricsHandler.instance
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        NOOPMetricsHandler.instance
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(factory: self)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        NOOPMetricsHandler.instance
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// Reads a pool's statistics on another thread and waits for the read to finish, as code called from a log handler
/// or a metrics backend might (a handler that forwards to a thread which takes the pool's figures). Had the pool
/// called the handler with its lock held, the read could not finish until the handler returned: the probe gives up
/// after five seconds and reports the record as blocked.
private final class StatisticsProbe: Sendable {
    struct Results: Sendable {
        /// The records during which the statistics could be read.
        var completed: Set<String> = []
        /// The records during which the read did not finish.
        var blocked: [String] = []
    }

    private let pool = LockedBox<ResourcePool<MockResource, ManualClock>?>(nil)
    private let recorded = LockedBox(Results())

    var results: Results { self.recorded.value }

    /// Runs a pool of one resource on a manual clock with `logger` and `metrics`, leases its resource, discards it
    /// (so that it is closed), shuts the pool down, and returns what the probe saw.
    func leaseDiscardAndShutDown(logger: Logger, metrics: any MetricsFactory) async throws -> Results {
        var configuration = ResourcePoolConfiguration(name: "probed")
        configuration.minimumSize = 1
        configuration.maximumSize = 1
        let pool = try ResourcePool(
            configuration: configuration,
            factory: MockResourceFactory().factory,
            clock: ManualClock(),
            logger: logger,
            metricsFactory: metrics
        )
        self.pool.mutate { $0 = pool }
        let run = Task { try await pool.run() }
        try await pool.waitForStatistics { $0.idle == 1 }
        let lease = try await pool.lease()
        await lease.release(discarding: true)
        pool.triggerGracefulShutdown()
        try await run.value
        return self.results
    }

    /// Reads the statistics on a Dispatch thread (not the cooperative pool) and waits for it.
    func readStatistics(handling record: String) {
        guard let pool = self.pool.value else { return }
        // One blocked read is enough to fail, and each costs the full wait.
        guard self.recorded.value.blocked.isEmpty else { return }
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = pool.statistics
            finished.signal()
        }
        if finished.wait(timeout: .now() + .seconds(5)) == .success {
            self.recorded.mutate { _ = $0.completed.insert(record) }
        } else {
            self.recorded.mutate { $0.blocked.append(record) }
        }
    }
}

/// A metrics backend that reads the pool's statistics for every value recorded, under the metric's label.
private final class ProbingMetricsFactory: MetricsFactory, Sendable {
    let probe: StatisticsProbe

    init(probe: StatisticsProbe) {
        self.probe = probe
    }

    private final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler,
        MeterHandler, Sendable
    {
        let label: String
        let probe: StatisticsProbe

        init(label: String, probe: StatisticsProbe) {
            self.label = label
            self.probe = probe
        }

        func increment(by amount: Int64) { self.probe.readStatistics(handling: self.label) }
        func increment(by amount: Double) { self.probe.readStatistics(handling: self.label) }
        func decrement(by amount: Double) { self.probe.readStatistics(handling: self.label) }
        func record(_ value: Int64) { self.probe.readStatistics(handling: self.label) }
        func record(_ value: Double) { self.probe.readStatistics(handling: self.label) }
        func set(_ value: Int64) { self.probe.readStatistics(handling: self.label) }
        func set(_ value: Double) { self.probe.readStatistics(handling: self.label) }
        func recordNanoseconds(_ duration: Int64) { self.probe.readStatistics(handling: self.label) }
        func reset() {}
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(label: label, probe: self.probe)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        Handler(label: label, probe: self.probe)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        Handler(label: label, probe: self.probe)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(label: label, probe: self.probe)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(label: label, probe: self.probe)
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
