import Metrics
import Synchronization

/// An in-process metrics backend that does the work a real one does on every record: lock-free counters, and
/// timers and recorders that fill a Prometheus-style histogram (bucket search, then atomic increments of the bucket,
/// the count and the sum).
///
/// The pool with every feature on reports to this factory, so the benchmark charges the pool for what its metrics
/// really cost instead of for a no-op. Every handler keeps its value in `Atomic` storage, so handlers are `Sendable`
/// without locks. The factory keeps every handler it made, so the run can print what was recorded.
final class BenchMetricsFactory: MetricsFactory {
    /// Every handler made so far, by label; read at the end of a run.
    private let made = Mutex<[(label: String, handler: any ValueReporting)]>([])

    init() {}

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.remember(label, AtomicCounter())
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        self.remember(label, AtomicFloatingPointCounter())
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.remember(label, AtomicMeter())
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            return self.remember(label, HistogramHandler(boundaries: HistogramHandler.valueBoundaries))
        }
        return self.remember(label, AtomicMeter())
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.remember(label, HistogramHandler(boundaries: HistogramHandler.nanosecondBoundaries))
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    /// One line per metric label with what every handler of that label recorded together (several pools report
    /// under the same labels), sorted by label: shows that the pool really reported.
    func summary() -> [String] {
        let made = self.made.withLock { $0 }
        var byLabel: [String: (handlers: Int, events: Int)] = [:]
        for (label, handler) in made {
            byLabel[label, default: (0, 0)].handlers += 1
            byLabel[label, default: (0, 0)].events += handler.events
        }
        return byLabel.keys.sorted().map { label in
            let figures = byLabel[label]!
            return "\(label): \(figures.events) events over \(figures.handlers) handlers"
        }
    }

    private func remember<Handler: ValueReporting>(_ label: String, _ handler: Handler) -> Handler {
        self.made.withLock { $0.append((label, handler)) }
        return handler
    }
}

/// A handler that can say what it has recorded.
protocol ValueReporting: AnyObject, Sendable {
    /// How many times the handler was updated (or, for a counter, its total).
    var events: Int { get }
}

final class AtomicCounter: CounterHandler, FloatingPointCounterHandler, ValueReporting {
    private let value = Atomic<Int64>(0)

    func increment(by amount: Int64) {
        self.value.wrappingAdd(amount, ordering: .relaxed)
    }

    func increment(by amount: Double) {
        self.value.wrappingAdd(Int64(amount), ordering: .relaxed)
    }

    func reset() {
        self.value.store(0, ordering: .relaxed)
    }

    var events: Int { Int(self.value.load(ordering: .relaxed)) }
}

final class AtomicFloatingPointCounter: FloatingPointCounterHandler, ValueReporting {
    private let bits = Atomic<UInt64>(0.0.bitPattern)

    func increment(by amount: Double) {
        AtomicDouble.add(amount, to: self.bits)
    }

    func reset() {
        self.bits.store(0.0.bitPattern, ordering: .relaxed)
    }

    var events: Int { Int(Double(bitPattern: self.bits.load(ordering: .relaxed))) }
}

/// A gauge: the last value set, moved up and down by increments.
final class AtomicMeter: MeterHandler, RecorderHandler, ValueReporting {
    private let bits = Atomic<UInt64>(0.0.bitPattern)
    private let updates = Atomic<Int>(0)

    func set(_ value: Int64) { self.set(Double(value)) }

    func set(_ value: Double) {
        self.bits.store(value.bitPattern, ordering: .relaxed)
        self.updates.wrappingAdd(1, ordering: .relaxed)
    }

    func increment(by amount: Double) {
        AtomicDouble.add(amount, to: self.bits)
        self.updates.wrappingAdd(1, ordering: .relaxed)
    }

    func decrement(by amount: Double) {
        AtomicDouble.add(-amount, to: self.bits)
        self.updates.wrappingAdd(1, ordering: .relaxed)
    }

    func record(_ value: Int64) { self.set(Double(value)) }
    func record(_ value: Double) { self.set(value) }

    var events: Int { self.updates.load(ordering: .relaxed) }
}

/// A cumulative histogram with fixed bucket boundaries, as a Prometheus client keeps one.
///
/// `@unchecked Sendable`: `boundaries` is immutable; `buckets` points to `Atomic` storage that is initialised in
/// `init`, freed in `deinit`, and otherwise only touched through atomic operations; `count` and `sumBits` are atomics.
final class HistogramHandler: TimerHandler, RecorderHandler, ValueReporting, @unchecked Sendable {
    /// Upper bounds for durations, in nanoseconds: 1 µs to 10 s.
    static let nanosecondBoundaries: [Double] = [
        1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 1e10,
    ]
    /// Upper bounds for plain values (counts, sizes).
    static let valueBoundaries: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000, 100_000]

    private let boundaries: [Double]
    /// `boundaries.count + 1` buckets, the last one for values above every boundary.
    private let buckets: UnsafeMutablePointer<Atomic<Int>>
    private let count = Atomic<Int>(0)
    private let sumBits = Atomic<UInt64>(0.0.bitPattern)

    init(boundaries: [Double]) {
        self.boundaries = boundaries
        self.buckets = .allocate(capacity: boundaries.count + 1)
        for index in 0...boundaries.count {
            (self.buckets + index).initialize(to: Atomic(0))
        }
    }

    deinit {
        self.buckets.deinitialize(count: self.boundaries.count + 1)
        self.buckets.deallocate()
    }

    func recordNanoseconds(_ duration: Int64) { self.record(Double(duration)) }
    func record(_ value: Int64) { self.record(Double(value)) }

    func record(_ value: Double) {
        // Binary search for the first boundary at or above the value.
        var low = 0
        var high = self.boundaries.count
        while low < high {
            let middle = (low + high) / 2
            if self.boundaries[middle] < value { low = middle + 1 } else { high = middle }
        }
        self.buckets[low].wrappingAdd(1, ordering: .relaxed)
        self.count.wrappingAdd(1, ordering: .relaxed)
        AtomicDouble.add(value, to: self.sumBits)
    }

    var events: Int { self.count.load(ordering: .relaxed) }
}

/// `Atomic<Double>` does not exist; a compare-and-exchange loop over the bit pattern does the same.
enum AtomicDouble {
    static func add(_ amount: Double, to bits: borrowing Atomic<UInt64>) {
        var current = bits.load(ordering: .relaxed)
        while true {
            let next = (Double(bitPattern: current) + amount).bitPattern
            let (exchanged, original) = bits.weakCompareExchange(
                expected: current,
                desired: next,
                ordering: .relaxed
            )
            if exchanged { return }
            current = original
        }
    }
}
