import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

/// Storms of timed waits whose timer fires before the waiter registers: a zero timeout (or a deadline already
/// passed) fires at once, in a child task that races the caller's registration. Each wait must end by itself; one
/// that does not is lost, and so is the task that made it.
///
/// Two shapes: 2,000 waits at once, as a user's burst would make them, and a few tasks that each wait many times in
/// a row, which keeps the scheduler's queue short so that the timer's task often runs on the other thread while its
/// caller registers (before the deadline was part of the waiter's state, every run of this shape lost waits).
///
/// The tests are bounded without spinning: a watchdog closes the primitive after `bound` of real time if the storm
/// has not ended by then, which frees any waiter still waiting with a different code (`channelCancelled`,
/// `limiterShutDown`). A lost waiter therefore shows as a wrong code, not as a test that never ends; a storm that
/// ends by itself (all of them, with the fix) cancels the watchdog and never waits for it.
@Suite("Timed-wait storms")
struct TimedWaitStormTests {
    /// One storm: `tasks` tasks, each making `waitsPerTask` timed waits in a row.
    struct Shape: Sendable, CustomTestStringConvertible {
        var tasks: Int
        var waitsPerTask: Int
        var total: Int { tasks * waitsPerTask }
        var testDescription: String { "\(tasks) tasks × \(waitsPerTask) waits" }
    }

    static let shapes = [Shape(tasks: 2_000, waitsPerTask: 1), Shape(tasks: 4, waitsPerTask: 5_000)]

    /// How long a storm may take before its watchdog closes the primitive (seconds in a loaded run, more under
    /// ThreadSanitizer).
    static let bound = Duration.seconds(120)

    /// Runs `close` after ``bound`` unless cancelled first.
    static func watchdog(_ close: @escaping @Sendable () -> Void) -> Task<Void, Never> {
        Task {
            do {
                try await Task.sleep(for: bound)
            } catch {
                return
            }
            close()
        }
    }

    @Test("timed sends with a zero timeout on a full channel all time out by themselves", arguments: shapes)
    func channelStorm(shape: Shape) async throws {
        try await channelStorm(shape: shape, clock: ManualClock())
    }

    @Test("timed sends with a zero timeout on the continuous clock all time out by themselves", arguments: shapes)
    func channelStormContinuous(shape: Shape) async throws {
        try await channelStorm(shape: shape, clock: ContinuousClock())
    }

    func channelStorm(shape: Shape, clock: some Clock<Duration>) async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        try channel.trySend(0)
        let codes = Collector<BackpressureError.Code>()
        let watchdog = Self.watchdog { channel.cancel() }  // frees any lost sender, with channelCancelled
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<shape.tasks {
                group.addTask {
                    for index in 0..<shape.waitsPerTask {
                        let element = producer * shape.waitsPerTask + index
                        do throws(BoundedChannel<Int>.SendError) {
                            try await channel.send(element, timeout: .zero, clock: clock)
                            codes.append(.invalidConfiguration)  // cannot happen: the channel stays full
                        } catch {
                            #expect(error.element == element)
                            codes.append(error.code)
                            if error.code != .timedOut { return }
                        }
                    }
                }
            }
        }
        watchdog.cancel()
        let codesSeen = codes.values
        #expect(codesSeen.filter { $0 != .timedOut }.count == 0, "sends that waited past their deadline")
        #expect(codesSeen.count == shape.total)
        #expect(channel.statistics.waitingProducers == 0)
    }

    @Test("timed acquires with a zero timeout on a full limiter all time out by themselves", arguments: shapes)
    func limiterTimeoutStorm(shape: Shape) async throws {
        try await limiterStorm(shape: shape) { limiter, _ throws(BackpressureError) in
            try await limiter.acquire(timeout: .zero)
        }
    }

    @Test("acquires with a deadline already passed on a full limiter all time out by themselves", arguments: shapes)
    func limiterDeadlineStorm(shape: Shape) async throws {
        try await limiterStorm(shape: shape) { limiter, clock throws(BackpressureError) in
            try await limiter.acquire(deadline: clock.now)
        }
    }

    func limiterStorm(
        shape: Shape,
        _ acquire: @escaping @Sendable (ConcurrencyLimiter<ManualClock>, ManualClock) async throws(BackpressureError)
            -> ConcurrencyLimiter<ManualClock>.Permit
    ) async throws {
        let clock = ManualClock()
        let limiter = try ConcurrencyLimiter(limit: 1, maxQueueLength: 2 * shape.tasks, clock: clock)
        let held = try await limiter.acquire()
        let codes = Collector<BackpressureError.Code>()
        let watchdog = Self.watchdog { limiter.shutdown() }  // frees any lost caller, with limiterShutDown
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<shape.tasks {
                group.addTask {
                    for _ in 0..<shape.waitsPerTask {
                        do throws(BackpressureError) {
                            let permit = try await acquire(limiter, clock)
                            permit.release()
                            codes.append(.invalidConfiguration)  // cannot happen: the only slot stays held
                        } catch {
                            codes.append(error.code)
                            if error.code != .timedOut { return }
                        }
                    }
                }
            }
        }
        watchdog.cancel()
        let codesSeen = codes.values
        #expect(codesSeen.filter { $0 != .timedOut }.count == 0, "acquires that waited past their deadline")
        #expect(codesSeen.count == shape.total)
        #expect(limiter.statistics.waiting == 0)
        held.release()
    }
}
