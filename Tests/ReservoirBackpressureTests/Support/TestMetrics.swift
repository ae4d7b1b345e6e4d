import CoreMetrics
import Synchronization

/// A metrics factory that keeps the last value of every gauge and the total of every counter, by label and
/// dimensions, so tests can assert on them.
final class TestMetrics: MetricsFactory, Sendable {
    private let values = Mutex<[String: Double]>([:])
    private let timers = Mutex<[String: [Int64]]>([:])

    init() {}

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// The counter total or last gauge value for `label` with exactly these dimensions.
    func value(_ label: String, _ dimensions: [(String, String)]) -> Double? {
        values.withLock { $0[Self.key(label, dimensions)] }
    }

    /// The recorded durations of a timer.
    func timings(_ label: String, _ dimensions: [(String, String)]) -> [Int64] {
        timers.withLock { $0[Self.key(label, dimensions)] ?? [] }
    }

    func set(_ key: String, _ value: Double) { values.withLock { $0[key] = value } }
    func add(_ key: String, _ value: Double) { values.withLock { $0[key, default: 0] += value } }
    func time(_ key: String, _ value: Int64) { timers.withLock { $0[key, default: []].append(value) } }

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
        let metrics: TestMetrics
        let key: String

        init(metrics: TestMetrics, key: String) {
            self.metrics = metrics
            self.key = key
        }

        func increment(by amount: Int64) { metrics.add(key, Double(amount)) }
        func increment(by amount: Double) { metrics.add(key, amount) }
        func reset() { metrics.set(key, 0) }
        func set(_ value: Int64) { metrics.set(key, Double(value)) }
        func set(_ value: Double) { metrics.set(key, value) }
        func decrement(by amount: Double) { metrics.add(key, -amount) }
        func record(_ value: Int64) { metrics.set(key, Double(value)) }
        func record(_ value: Double) { metrics.set(key, value) }
        func recordNanoseconds(_ duration: Int64) { metrics.time(key, duration) }
    }
}
