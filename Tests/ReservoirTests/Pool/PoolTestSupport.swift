import Logging
import Reservoir
import ReservoirTestKit
import Testing

/// A pool on a manual clock with a mock factory, a recording metrics factory and a test logger, plus the task that
/// runs it.
struct PoolHarness: Sendable {
    let pool: ResourcePool<MockResource, ManualClock>
    let clock: ManualClock
    let factory: MockResourceFactory
    let metrics: RecordingMetricsFactory
    let logs: LogRecorder
    let runTask: Task<Void, any Error>

    init(
        _ configure: (inout ResourcePoolConfiguration) -> Void = { _ in },
        creation: MockResourceFactory.Mode = .immediate,
        closing: MockResourceFactory.Mode = .immediate,
        hooks: ResourcePoolHooks<MockResource> = ResourcePoolHooks(),
        jitter: JitterSource = .constant(0.5),
        start: Bool = true
    ) throws {
        var configuration = ResourcePoolConfiguration(name: "test")
        configuration.maximumSize = 4
        configuration.idleTimeout = nil
        configuration.maximumLifetime = nil
        configuration.acquireTimeout = nil
        configure(&configuration)
        let clock = ManualClock()
        let factory = MockResourceFactory(creation: creation, closing: closing)
        let metrics = RecordingMetricsFactory()
        let logs = LogRecorder()
        let pool = try ResourcePool(
            configuration: configuration,
            factory: factory.factory,
            hooks: hooks,
            clock: clock,
            jitter: jitter,
            logger: logs.logger,
            metricsFactory: metrics
        )
        self.pool = pool
        self.clock = clock
        self.factory = factory
        self.metrics = metrics
        self.logs = logs
        self.runTask = Task { try await pool.run() }
    }

    /// Shuts the pool down gracefully and waits for `run()` to return.
    func shutdown() async throws {
        self.pool.triggerGracefulShutdown()
        try await self.runTask.value
    }
}

/// Collects log messages for assertions, and calls `onRecord` with each message as it is logged.
final class LogRecorder: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = LockedBox<[Entry]>([])
    private let onRecord: @Sendable (String) -> Void

    init(onRecord: @escaping @Sendable (String) -> Void = { _ in }) {
        self.onRecord = onRecord
    }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(recorder: self) }
    }

    var all: [Entry] { self.entries.value }

    func messages(at level: Logger.Level) -> [Entry] {
        self.all.filter { $0.level == level }
    }

    fileprivate func append(_ entry: Entry) {
        self.onRecord(entry.message)
        self.entries.mutate { $0.append(entry) }
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = self.metadata
            for (key, value) in event.metadata ?? [:] { merged[key] = value }
            self.recorder.append(Entry(
                level: event.level,
                message: "\(event.message)",
                metadata: merged.mapValues { "\($0)" }
            ))
        }
    }
}

import Synchronization

/// A value behind a lock, for test bookkeeping shared between tasks.
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        self.mutex = Mutex(value)
    }

    var value: Value { self.mutex.withLock { $0 } }

    func mutate<T: Sendable>(_ body: (inout Value) -> T) -> T {
        self.mutex.withLock { body(&$0) }
    }
}
