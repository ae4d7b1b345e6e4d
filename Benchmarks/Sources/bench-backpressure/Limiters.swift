import ReservoirBackpressure
import Foundation
import Synchronization

/// Seconds elapsed for `body`.
func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let (whole, fraction) = start.duration(to: .now).components
    return Double(whole) + Double(fraction) / 1e18
}

/// Uncontended `tryAcquire` cost (granted path), in ns per call.
func tryAcquireCost(iterations: Int) async -> Double {
    let limiter = try! RateLimiter(.tokenBucket(rate: 1e12, burst: 1_000_000))
    var granted = 0
    let elapsed = await seconds {
        for _ in 0..<iterations where try! limiter.tryAcquire() { granted += 1 }
    }
    precondition(granted == iterations, "the benchmark limiter should never refuse")
    return elapsed / Double(iterations) * 1e9
}

/// Uncontended `tryAcquire(at:)` cost (granted path, the caller supplies the instant), in ns per call.
func tryAcquireAtCost(iterations: Int) async -> Double {
    let limiter = try! RateLimiter(.tokenBucket(rate: 1e12, burst: 1_000_000))
    let now = ContinuousClock.now
    var granted = 0
    let elapsed = await seconds {
        for index in 0..<iterations where try! limiter.tryAcquire(at: now.advanced(by: .nanoseconds(index))) {
            granted += 1
        }
    }
    precondition(granted == iterations, "the benchmark limiter should never refuse")
    return elapsed / Double(iterations) * 1e9
}

/// The cost of reading `ContinuousClock.now`, in ns: the floor under any limiter call that reads the clock.
func clockReadCost(iterations: Int) async -> Double {
    var sink = 0
    let start = ContinuousClock.now
    let elapsed = await seconds {
        for _ in 0..<iterations where ContinuousClock.now > start { sink += 1 }
    }
    precondition(sink == iterations)
    return elapsed / Double(iterations) * 1e9
}

/// Uncontended `tryAcquire` cost on the refused path, in ns per call.
func tryAcquireRefusedCost(iterations: Int) async -> Double {
    let limiter = try! RateLimiter(.tokenBucket(rate: 1e-3, burst: 1))
    _ = try! limiter.tryAcquire()
    var refused = 0
    let elapsed = await seconds {
        for _ in 0..<iterations where !(try! limiter.tryAcquire()) { refused += 1 }
    }
    precondition(refused == iterations)
    return elapsed / Double(iterations) * 1e9
}

/// Contended bulkhead: 64 tasks doing `withPermit {}` on a limit of 8; permits per second.
func bulkheadThroughput(cyclesPerTask: Int) async -> Double {
    let limiter = try! ConcurrencyLimiter(limit: 8, maxQueueLength: 64)
    let elapsed = await seconds {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    for _ in 0..<cyclesPerTask { try! await limiter.withPermit {} }
                }
            }
        }
    }
    return Double(64 * cyclesPerTask) / elapsed
}

/// Contended token bucket without waiting: 64 tasks calling `acquire()` on a rate nobody reaches; acquires per second.
func rateAcquireThroughput(callsPerTask: Int) async -> Double {
    let limiter = try! RateLimiter(.tokenBucket(rate: 1e12, burst: 1_000_000))
    let elapsed = await seconds {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    for _ in 0..<callsPerTask { try! await limiter.acquire() }
                }
            }
        }
    }
    return Double(64 * callsPerTask) / elapsed
}

/// Contended token bucket: 64 tasks calling `acquire()` at a target rate for `duration`; returns achieved/target.
func rateAccuracy(rate: Double, burst: Int, duration: Duration) async -> Double {
    let limiter = try! RateLimiter(.tokenBucket(rate: rate, burst: burst))
    let end = ContinuousClock.now.advanced(by: duration)
    let counted = SharedCounter()
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<64 {
            group.addTask {
                while true {
                    try! await limiter.acquire()
                    guard ContinuousClock.now < end else { return }
                    counted.value.add(1, ordering: .relaxed)
                }
            }
        }
    }
    let (whole, fraction) = start.duration(to: end).components
    let elapsed = Double(whole) + Double(fraction) / 1e18
    // The bucket starts full: the burst is a one-off on top of the rate.
    return (Double(counted.value.load(ordering: .relaxed)) - Double(burst)) / (rate * elapsed)
}

func runLimiterBenchmarks() async -> [(String, String)] {
    var granted: [Double] = []
    var refused: [Double] = []
    var bulkhead: [Double] = []
    var grantedAt: [Double] = []
    var rateAcquire: [Double] = []
    var clockRead: [Double] = []
    for _ in 0..<5 {
        clockRead.append(await clockReadCost(iterations: 2_000_000))
        granted.append(await tryAcquireCost(iterations: 2_000_000))
        grantedAt.append(await tryAcquireAtCost(iterations: 2_000_000))
        refused.append(await tryAcquireRefusedCost(iterations: 2_000_000))
        bulkhead.append(await bulkheadThroughput(cyclesPerTask: 5_000))
        rateAcquire.append(await rateAcquireThroughput(callsPerTask: 10_000))
    }
    // A burst of 10 permits holds 10 ms of schedule at 1000/s but only 0.5 ms at 20 000/s: with 64 tasks on two
    // busy cores, a consumer that wakes later than that loses the slot (a token bucket banks no more than its burst).
    // The 200-permit run (10 ms) separates the limiter's accuracy from the machine's wake-up latency.
    var accuracy: [(Double, Int, Double)] = []
    for (rate, burst) in [(1_000.0, 10), (20_000.0, 10), (20_000.0, 200)] {
        accuracy.append((rate, burst, await rateAccuracy(rate: rate, burst: burst, duration: .seconds(3))))
    }
    print("")
    print("| limiter measurement | median | spread (min–max) |")
    print("|---|---|---|")
    print(
        "| tryAcquire granted, uncontended | \(format(median(granted), 1)) ns | \(format(granted.min()!, 1))–\(format(granted.max()!, 1)) ns |"
    )
    print(
        "| ContinuousClock.now (the floor of any clock-reading call) | \(format(median(clockRead), 1)) ns | \(format(clockRead.min()!, 1))–\(format(clockRead.max()!, 1)) ns |"
    )
    print(
        "| tryAcquire(at:) granted, caller supplies the instant | \(format(median(grantedAt), 1)) ns | \(format(grantedAt.min()!, 1))–\(format(grantedAt.max()!, 1)) ns |"
    )
    print(
        "| tryAcquire refused, uncontended | \(format(median(refused), 1)) ns | \(format(refused.min()!, 1))–\(format(refused.max()!, 1)) ns |"
    )
    print(
        "| bulkhead withPermit, 64 tasks, limit 8 | \(formatRate(median(bulkhead)))/s | \(formatRate(bulkhead.min()!))–\(formatRate(bulkhead.max()!)) |"
    )
    print(
        "| token bucket acquire, 64 tasks, never waiting | \(formatRate(median(rateAcquire)))/s | \(formatRate(rateAcquire.min()!))–\(formatRate(rateAcquire.max()!)) |"
    )
    for (rate, burst, ratio) in accuracy {
        print(
            "| token bucket acquire, 64 tasks, \(Int(rate))/s burst \(burst), 3 s | achieved/target \(format(ratio, 4)) | one run |"
        )
    }
    return [
        ("limiter.try_acquire_ns", format(median(granted), 1)),
        ("limiter.try_acquire_refused_ns", format(median(refused), 1)),
        ("limiter.try_acquire_at_ns", format(median(grantedAt), 1)),
        ("limiter.clock_read_ns", format(median(clockRead), 1)),
        ("limiter.bulkhead_64_tasks_per_s", "\(Int(median(bulkhead)))"),
        ("limiter.rate_acquire_64_tasks_per_s", "\(Int(median(rateAcquire)))"),
        ("limiter.rate_accuracy_1000_burst10", format(accuracy[0].2, 4)),
        ("limiter.rate_accuracy_20000_burst10", format(accuracy[1].2, 4)),
        ("limiter.rate_accuracy_20000_burst200", format(accuracy[2].2, 4)),
        ("limiter.rate_accuracy", format(accuracy[0].2, 4)),
    ]
}

final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}
