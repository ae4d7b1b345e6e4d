import CoreMetrics
import Synchronization

/// A `MetricsFactory` that records every value, so that tests can read metrics back.
///
/// Look metrics up by label and dimensions (order of dimensions does not matter; pass the subset you care about:
/// a metric matches when it has every dimension you pass).
public final class RecordingMetricsFactory: MetricsFactory, Sendable {
    /// What was recorded for one metric.
    public struct Record: Sendable {
        /// The metric's label.
        public var label: String
        /// The metric's dimensions.
        public var dimensions: [String: String]
        /// Counter total, or the last recorded gauge/recorder/timer value (timers in nanoseconds).
        public var lastValue: Double?
        /// Every value recorded, in order (counters: increments).
        public var values: [Double]
        /// For counters: the running total.
        public var total: Int64
    }

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler, MeterHandler, Sendable {
        let key: Int
        let factory: RecordingMetricsFactory

        init(key: Int, factory: RecordingMetricsFactory) {
            self.key = key
            self.factory = factory
        }

        func increment(by amount: Int64) {
            self.factory.update(self.key) { record in
                record.total += amount
                record.values.append(Double(amount))
                record.lastValue = Double(record.total)
            }
        }

        func reset() {
            self.factory.update(self.key) { record in
                record.total = 0
                record.lastValue = 0
            }
        }

        func record(_ value: Int64) { self.set(Double(value)) }
        func record(_ value: Double) { self.set(value) }
        func recordNanoseconds(_ duration: Int64) { self.set(Double(duration)) }
        func set(_ value: Int64) { self.set(Double(value)) }

        func set(_ value: Double) {
            self.factory.update(self.key) { record in
                record.values.append(value)
                record.lastValue = value
            }
        }

        func increment(by amount: Double) { self.set((self.factory.lastValue(self.key) ?? 0) + amount) }
        func decrement(by amount: Double) { self.set((self.factory.lastValue(self.key) ?? 0) - amount) }
    }

    /// Protects the records.
    private let records = Mutex<[Record]>([])

    /// Creates an empty factory.
    public init() {}

    fileprivate func update(_ key: Int, _ body: (inout Record) -> Void) {
        self.records.withLock { body(&$0[key]) }
    }

    fileprivate func lastValue(_ key: Int) -> Double? {
        self.records.withLock { $0[key].lastValue }
    }

    private func make(_ label: String, _ dimensions: [(String, String)]) -> Handler {
        let key = self.records.withLock { records -> Int in
            records.append(Record(
                label: label,
                dimensions: Dictionary(dimensions, uniquingKeysWith: { _, last in last }),
                lastValue: nil,
                values: [],
                total: 0
            ))
            return records.count - 1
        }
        return Handler(key: key, factory: self)
    }

    /// Creates a recording counter.
    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.make(label, dimensions)
    }

    /// Creates a recording meter.
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.make(label, dimensions)
    }

    /// Creates a recording recorder (gauges are recorders).
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        self.make(label, dimensions)
    }

    /// Creates a recording timer (values in nanoseconds).
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.make(label, dimensions)
    }

    /// Keeps the records (tests read them after the metric is gone).
    public func destroyCounter(_ handler: any CounterHandler) {}
    /// Keeps the records.
    public func destroyMeter(_ handler: any MeterHandler) {}
    /// Keeps the records.
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    /// Keeps the records.
    public func destroyTimer(_ handler: any TimerHandler) {}

    /// Every metric recorded under `label` whose dimensions include `dimensions`.
    public func records(_ label: String, _ dimensions: [String: String] = [:]) -> [Record] {
        self.records.withLock { records in
            records.filter { record in
                record.label == label && dimensions.allSatisfy { record.dimensions[$0.key] == $0.value }
            }
        }
    }

    /// The total of the counters under `label` with `dimensions` (0 when none exists).
    public func counter(_ label: String, _ dimensions: [String: String] = [:]) -> Int64 {
        self.records(label, dimensions).reduce(0) { $0 + $1.total }
    }

    /// The last value of the gauge (or recorder) under `label` with `dimensions`.
    public func gauge(_ label: String, _ dimensions: [String: String] = [:]) -> Double? {
        self.records(label, dimensions).last?.lastValue
    }

    /// Every value recorded by the timers under `label` with `dimensions`, in nanoseconds.
    public func timerValues(_ label: String, _ dimensions: [String: String] = [:]) -> [Int64] {
        self.records(label, dimensions).flatMap { $0.values.map { Int64($0) } }
    }
}
