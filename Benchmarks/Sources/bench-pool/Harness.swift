import CMallocCounter
import Synchronization

/// One pool under test. Every pool is driven through the same generic loop, specialised for its concrete type, so
/// the only difference between two contenders is the pool.
protocol BenchPool: Sendable {
    /// Acquires a resource, runs `body` with it, and releases it when `body` returns or throws.
    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T

    /// Stops the pool and waits until its background work has finished.
    func shutdown() async
}

/// No pool at all: hands every caller the same resource. Measures what the harness itself allocates per cycle, so
/// the allocation figures of the real pools can be reported net of it.
struct NullPool: BenchPool {
    let resource = BenchResource(id: 0)

    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        try await body(self.resource)
    }

    func shutdown() async {}
}

/// One workload: how many tasks compete for how many resources, and whether each holds its resource across a
/// `Task.yield()`.
struct Scenario: Sendable {
    var name: String
    var tasks: Int
    var resources: Int
    /// Holding across a suspension point is what makes contention real: without it, a pool that hands a free
    /// resource back without suspending lets a couple of tasks monopolise it and the throughput means nothing.
    var holdAcrossYield: Bool
    var cyclesPerRound: Int
    /// Whether another task reads the pool's statistics every millisecond (see
    /// `ContenderKind.reservoirAllFeaturesStatistics`).
    var readsStatistics = false

    /// In the uncontended case one wait in 16 is timed, to keep the two clock reads out of a cycle that costs only
    /// about a microsecond; under contention every wait is timed (a cycle costs several microseconds there).
    var waitSampleMask: Int { self.tasks == 1 ? 15 : 0 }

    var summary: String {
        let hold = self.holdAcrossYield ? "each holds its resource across a Task.yield()" : "no hold"
        let reader = self.readsStatistics ? "; with and without a task reading the statistics every ms" : ""
        return "\(self.tasks) task\(self.tasks == 1 ? "" : "s") over \(self.resources) resources, \(hold)\(reader)"
    }
}

/// How many statistics reads the reader tasks of the statistics scenarios made, in total.
let statisticsReads = ReadCounter()

/// A shared count.
final class ReadCounter: Sendable {
    private let count = Atomic<Int>(0)

    func add(_ amount: Int) {
        self.count.add(amount, ordering: .relaxed)
    }

    var value: Int { self.count.load(ordering: .relaxed) }
}

/// Hands out cycle numbers; a task stops when its number reaches the round's total, so a round always runs exactly
/// the same number of cycles whatever the pool's fairness.
final class TicketDispenser: Sendable {
    private let next = Atomic<Int>(0)

    @inline(__always)
    func take() -> Int {
        self.next.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// Wait times indexed by cycle number. Each index is written by the one task that took that ticket, and read only
/// after every task of the round has finished (the task group's join orders the accesses).
struct WaitBuffer: @unchecked Sendable {
    let storage: UnsafeMutableBufferPointer<UInt64>

    init(capacity: Int) {
        self.storage = .allocate(capacity: capacity)
        self.storage.initialize(repeating: 0)
    }

    func deallocate() {
        self.storage.deallocate()
    }
}

/// Holds every task of a round until all of them have been created, so that the first tasks cannot run thousands of
/// cycles alone while the rest are still being spawned (which a loaded machine makes likely, and which would make a
/// fair pool look unfair).
///
/// `@unchecked Sendable`: `state` is a `Mutex`; the rest is immutable.
final class StartGate: @unchecked Sendable {
    private struct State {
        var open = false
        var waiters: [UnsafeContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    init(expectedWaiters: Int) {
        self.state.withLock { $0.waiters.reserveCapacity(expectedWaiters) }
    }

    func wait() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let resumeNow = self.state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow {
                continuation.resume()
            }
        }
    }

    func open() {
        let waiters = self.state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters {
            waiter.resume()
        }
    }
}

/// What one task did in a round.
struct TaskTally: Sendable {
    var cycles = 0
    var checksum = 0
}

/// What a resource looked like to the task that acquired it.
struct Acquired: Sendable {
    var at: UInt64
    var resourceID: Int
}

/// What one contender did in one round.
struct RoundMeasurement: Sendable {
    var cycles: Int
    var elapsedNanoseconds: UInt64
    /// CPU time of the whole process during the round.
    var cpuNanoseconds: UInt64
    /// Sorted ascending, in nanoseconds.
    var waits: [UInt64]
    var tasksThatLeased: Int
    var fewestCyclesOfATask: Int
    var mostCyclesOfATask: Int
    var checksum: Int

    var cyclesPerSecond: Double {
        Double(self.cycles) / (Double(self.elapsedNanoseconds) / 1e9)
    }

    var cpuNanosecondsPerCycle: Double {
        Double(self.cpuNanoseconds) / Double(self.cycles)
    }

    func waitPercentile(_ fraction: Double) -> Double {
        guard !self.waits.isEmpty else { return 0 }
        let index = min(self.waits.count - 1, Int((Double(self.waits.count) * fraction).rounded(.up)) - 1)
        return Double(self.waits[max(0, index)])
    }

    var meanWait: Double {
        guard !self.waits.isEmpty else { return 0 }
        return Double(self.waits.reduce(0, &+)) / Double(self.waits.count)
    }

    /// Under strict FIFO every waiter waits for the (tasks − resources) requests queued ahead of it to be served,
    /// at the pool's service rate: W = (N − R) / X (Little's law with the queue always full). A fair pool's p99
    /// stays close to this; one that lets newcomers barge has a long tail far above it.
    func impliedWaitNanoseconds(_ scenario: Scenario) -> Double {
        Double(max(0, scenario.tasks - scenario.resources)) / self.cyclesPerSecond * 1e9
    }
}

/// Runs one round of `scenario` on `pool`: `scenario.tasks` tasks take tickets until `cycles` cycles are done.
///
/// Generic over the concrete pool type so that the optimiser specialises the whole loop for each contender.
func runRound<Pool: BenchPool>(
    _ pool: Pool,
    _ scenario: Scenario,
    cycles: Int,
    waits: WaitBuffer,
    countAllocations: Bool = false
) async throws -> RoundMeasurement {
    let tickets = TicketDispenser()
    let hold = scenario.holdAcrossYield
    let mask = scenario.waitSampleMask
    let tasks = scenario.tasks

    let gate = StartGate(expectedWaiters: tasks)

    if countAllocations {
        reservoir_malloc_counter_set_enabled(1)
    }
    var start: UInt64 = 0
    var cpuStart: UInt64 = 0
    let tallies = try await withThrowingTaskGroup(of: TaskTally.self, returning: [TaskTally].self) { group in
        for _ in 0..<tasks {
            group.addTask {
                await gate.wait()
                return try await runCycles(
                    pool,
                    tickets: tickets,
                    cycles: cycles,
                    hold: hold,
                    sampleMask: mask,
                    waits: waits
                )
            }
        }
        cpuStart = processCPUNanoseconds()
        start = monotonicNanoseconds()
        gate.open()
        var tallies: [TaskTally] = []
        tallies.reserveCapacity(tasks)
        for try await tally in group {
            tallies.append(tally)
        }
        return tallies
    }
    let elapsed = monotonicNanoseconds() - start
    let cpu = processCPUNanoseconds() - cpuStart
    if countAllocations {
        reservoir_malloc_counter_set_enabled(0)
    }

    var sampled: [UInt64] = []
    sampled.reserveCapacity(cycles / (mask + 1) + 1)
    var index = 0
    while index < cycles {
        sampled.append(waits.storage[index])
        index += mask + 1
    }
    sampled.sort()

    let leased = tallies.filter { $0.cycles > 0 }
    return RoundMeasurement(
        cycles: tallies.reduce(0) { $0 + $1.cycles },
        elapsedNanoseconds: elapsed,
        cpuNanoseconds: cpu,
        waits: sampled,
        tasksThatLeased: leased.count,
        fewestCyclesOfATask: tallies.map(\.cycles).min() ?? 0,
        mostCyclesOfATask: tallies.map(\.cycles).max() ?? 0,
        checksum: tallies.reduce(0) { $0 &+ $1.checksum }
    )
}

/// One task's loop: take a ticket, acquire, (hold across a yield), release, until the tickets run out.
@inline(__always)
func runCycles<Pool: BenchPool>(
    _ pool: Pool,
    tickets: TicketDispenser,
    cycles: Int,
    hold: Bool,
    sampleMask: Int,
    waits: WaitBuffer
) async throws -> TaskTally {
    var tally = TaskTally()
    while true {
        let ticket = tickets.take()
        if ticket >= cycles {
            return tally
        }
        let timed = ticket & sampleMask == 0
        let requestedAt = timed ? monotonicNanoseconds() : 0
        let acquired = try await pool.cycle { resource in
            let acquiredAt = timed ? monotonicNanoseconds() : 0
            if hold {
                await Task.yield()
            }
            return Acquired(at: acquiredAt, resourceID: resource.id)
        }
        if timed {
            waits.storage[ticket] = acquired.at &- requestedAt
        }
        tally.cycles += 1
        tally.checksum &+= acquired.resourceID
    }
}

/// Counts the allocations of one round, in cycles' worth.
func measureAllocations<Pool: BenchPool>(
    _ pool: Pool,
    _ scenario: Scenario,
    cycles: Int,
    waits: WaitBuffer
) async throws -> Double {
    reservoir_malloc_counter_reset()
    _ = try await runRound(pool, scenario, cycles: cycles, waits: waits, countAllocations: true)
    return Double(reservoir_malloc_counter_allocations()) / Double(cycles)
}

/// Whether the malloc counter sees this process's allocations (it needs glibc and symbol interposition).
func allocationCountingWorks() -> Bool {
    reservoir_malloc_counter_reset()
    reservoir_malloc_counter_set_enabled(1)
    let probe = [UInt64](repeating: 1, count: 64 + Int(monotonicNanoseconds() & 0xff))
    keepAlive(probe)
    reservoir_malloc_counter_set_enabled(0)
    return reservoir_malloc_counter_allocations() > 0
}

/// Keeps the optimiser from removing a value that is computed only to be measured.
@inline(never)
func keepAlive<T>(_ value: T) {
    withExtendedLifetime(value) {}
}
