import Synchronization

// The Backpressure tests use `ReservoirTestClock.ManualClock`; these are their other helpers.

/// Yields until `condition` holds; fails the test (returns false) after many tries. A rendezvous for state that
/// another task reaches without a hook to await, such as "the producer is now suspended in the channel".
@discardableResult
func eventually(_ condition: () -> Bool, tries: Int = 2_000_000) async -> Bool {
    for _ in 0..<tries {
        if condition() { return true }
        await Task.yield()
    }
    return condition()
}

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
