import CoreMetrics
import ReservoirBackpressure
import Synchronization

// The Backpressure tests use `ReservoirTestClock.ManualClock`; these are their other helpers.

// No test yields in a loop: a suspended producer, consumer or limiter waiter is awaited through the metric the code
// under test records right after registering it (``ObservedMetrics``), a timer through the manual clock
// (`waitForSleepers`), a task's progress through what it reports (an `AsyncStream`).

/// A small deterministic random number generator (SplitMix64) for property-style tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A thread-safe list that tasks append to.
final class Collector<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    init() {}

    func append(_ value: Value) { storage.withLock { $0.append(value) } }
    var values: [Value] { storage.withLock { $0 } }
}

/// The backpressure tests' metrics factory, by label and dimensions: counters and meters add up, gauges and recorders
/// keep their last value, and a timer's value is how many durations it recorded. A test can assert on a value or
/// await one: the rendezvous for events that the code under test reports as a metric right after its state changed,
/// such as a channel's `backpressure.channel.producers_waiting` (raised once a producer is registered as suspended).
final class ObservedMetrics: MetricsFactory, Sendable {
    private struct Watcher {
        let key: String
        let isSatisfied: @Sendable (Double) -> Bool
        let continuation: UnsafeContinuation<Void, Never>
    }

    private struct State {
        var values: [String: Double] = [:]
        var watchers: [Watcher] = []
    }

    private let state = Mutex<State>(State())

    init() {}

    /// The value of `label` with exactly these dimensions, if it was ever recorded.
    func value(_ label: String, _ dimensions: [(String, String)] = []) -> Double? {
        let key = Self.key(label, dimensions)
        return self.state.withLock { $0.values[key] }
    }

    /// Returns once the value of `label` (0 before it is recorded) satisfies `isSatisfied`; at once if it already
    /// does. It waits for the code under test to record, never by polling.
    func until(
        _ label: String,
        _ dimensions: [(String, String)] = [],
        _ isSatisfied: @escaping @Sendable (Double) -> Bool
    ) async {
        let key = Self.key(label, dimensions)
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let satisfied = self.state.withLock { state -> Bool in
                if isSatisfied(state.values[key] ?? 0) { return true }
                state.watchers.append(Watcher(key: key, isSatisfied: isSatisfied, continuation: continuation))
                return false
            }
            if satisfied { continuation.resume() }
        }
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    fileprivate func update(_ key: String, _ change: (inout Double) -> Void) {
        let ready = self.state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            change(&state.values[key, default: 0])
            let value = state.values[key, default: 0]
            var ready: [UnsafeContinuation<Void, Never>] = []
            state.watchers.removeAll { watcher in
                guard watcher.key == key, watcher.isSatisfied(value) else { return false }
                ready.append(watcher.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(metrics: self, key: Self.key(label, dimensions))
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        Handler(metrics: self, key: Self.key(label, dimensions))
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        Handler(metrics: self, key: Self.key(label, dimensions))
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(metrics: self, key: Self.key(label, dimensions))
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(metrics: self, key: Self.key(label, dimensions))
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class Handler: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler,
        TimerHandler
    {
        let metrics: ObservedMetrics
        let key: String

        init(metrics: ObservedMetrics, key: String) {
            self.metrics = metrics
            self.key = key
        }

        func increment(by amount: Int64) { metrics.update(key) { $0 += Double(amount) } }
        func increment(by amount: Double) { metrics.update(key) { $0 += amount } }
        func reset() { metrics.update(key) { $0 = 0 } }
        func set(_ value: Int64) { metrics.update(key) { $0 = Double(value) } }
        func set(_ value: Double) { metrics.update(key) { $0 = value } }
        func decrement(by amount: Double) { metrics.update(key) { $0 -= amount } }
        func record(_ value: Int64) { metrics.update(key) { $0 = Double(value) } }
        func record(_ value: Double) { metrics.update(key) { $0 = value } }
        func recordNanoseconds(_ duration: Int64) { metrics.update(key) { $0 += 1 } }
    }
}

extension BoundedChannel {
    /// A channel of `configuration` whose metrics go to `metrics`, so that a test can await a producer suspending
    /// (``ObservedMetrics/waitForWaitingProducers(_:)``).
    static func observed(
        _ configuration: Configuration,
        metrics: ObservedMetrics
    ) throws -> BoundedChannel {
        var configuration = configuration
        configuration.metricsFactory = metrics
        return try BoundedChannel(configuration: configuration)
    }
}

extension ObservedMetrics {
    /// Returns once `count` producers are suspended in a channel observed by these metrics (see
    /// `BoundedChannel.observed(_:metrics:)`): the channel raises its producers-waiting meter right after registering
    /// a suspended producer.
    func waitForWaitingProducers(_ count: Int) async {
        await self.until("backpressure.channel.producers_waiting", [("channel", "channel")]) { $0 == Double(count) }
    }

    /// Returns once `count` consumers of a channel labelled `channel` (the default) wait on it: the channel raises
    /// `backpressure.channel.consumers_waiting` right after registering a consumer as suspended.
    func waitForWaitingConsumers(_ count: Int) async {
        await self.until("backpressure.channel.consumers_waiting", [("channel", "channel")]) { $0 == Double(count) }
    }

    /// Returns once `count` callers wait in a concurrency limiter's queue: the limiter raises
    /// `backpressure.limiter.waiting` right after registering a caller as suspended.
    func waitForLimiterWaiters(_ count: Int, kind: String = "concurrency", label: String = "bulkhead") async {
        await self.until("backpressure.limiter.waiting", [("kind", kind), ("limiter", label)]) { $0 == Double(count) }
    }
}
