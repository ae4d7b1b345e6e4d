// bench-selfsize: a self-sizing PostgresPool (maximumSize 64) against the best fixed size, under the same load.
//
// The load is pgbench's point select (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, random aid, scale 10)
// from more clients than any pool has connections (a closed loop of BENCH_CLIENTS tasks, default 96, each sending
// its next query as soon as the previous returns), over TCP loopback to a throwaway server, so that the pool's size,
// not the load, decides the throughput. First a sweep of fixed sizes 1, 2, 4, … 64 under that load finds the best
// fixed size (the most throughput; `reservoir advise`'s rule would pick the smallest size within 90 % of it, so this
// is the harder comparison). Then rounds of three phases, in an order that rotates every round:
//   - fixed: a pool fixed at the best size;
//   - selfsize: `maximumSize` 64 with `selfSizing = .throughputSeeking()` (one pool for the whole run: it keeps
//     what it learnt between its phases, as it would in a service);
//   - fixed64: a pool fixed at 64, for contrast.
// Latency is per query as a client sees it (waiting for a connection included). Figures are medians over the
// rounds; ratios are taken per round and their median printed.
//
// Environment: BENCH_ROUNDS (default 5), BENCH_SECONDS per phase (default 3), BENCH_CLIENTS (default 96).
import Foundation
import Glibc
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir

let environment = ProcessInfo.processInfo.environment
let rounds = max(1, Int(environment["BENCH_ROUNDS"] ?? "") ?? 5)
let phaseSeconds = max(1, Int(environment["BENCH_SECONDS"] ?? "") ?? 3)
let clients = max(1, Int(environment["BENCH_CLIENTS"] ?? "") ?? 96)
let accounts: UInt64 = 1_000_000

func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

func format(_ value: Double, _ digits: Int = 3) -> String {
    String(format: "%.\(digits)f", value)
}

struct Sample {
    var queriesPerSecond: Double
    var p50Milliseconds: Double
    var p99Milliseconds: Double
}

/// Runs the closed loop through `pool` for `seconds`.
func measure(_ pool: PostgresPool, seconds: Int) async throws -> Sample {
    let start = monotonicNanoseconds()
    let deadline = start + UInt64(seconds) * 1_000_000_000
    let perClient = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for client in 0..<clients {
            group.addTask {
                var state = 0x9E37_79B9_7F4A_7C15 &+ UInt64(client) &* 7919
                var latencies: [UInt64] = []
                latencies.reserveCapacity(1 << 14)
                while true {
                    let begin = monotonicNanoseconds()
                    if begin >= deadline { break }
                    state ^= state >> 12
                    state ^= state << 25
                    state ^= state >> 27
                    let aid = Int32(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) % accounts) + 1
                    _ = try await pool.query("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)")
                    latencies.append(monotonicNanoseconds() - begin)
                }
                return latencies
            }
        }
        var all: [[UInt64]] = []
        for try await latencies in group { all.append(latencies) }
        return all
    }
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    let latencies = perClient.flatMap { $0 }.sorted()
    func percentile(_ fraction: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        return Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * fraction))]) / 1e6
    }
    return Sample(
        queriesPerSecond: Double(latencies.count) / elapsed,
        p50Milliseconds: percentile(0.5),
        p99Milliseconds: percentile(0.99)
    )
}

func makePool(_ connectionString: String, name: String, size: Int, selfSizing: Bool) throws -> PostgresPool {
    var configuration = PostgresPool.Configuration(
        connection: try .init(connectionString: connectionString),
        name: name
    )
    configuration.pool.maximumSize = size
    configuration.pool.minimumSize = selfSizing ? 0 : size
    configuration.pool.maximumConcurrentCreations = 8
    configuration.pool.acquireTimeout = .seconds(60)
    if selfSizing { configuration.pool.selfSizing = .throughputSeeking() }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    return try PostgresPool(configuration: configuration, logger: logger)
}

/// Runs `body` with a pool that runs meanwhile and is shut down after.
func withPool<T: Sendable>(
    _ pool: PostgresPool,
    _ body: @Sendable @escaping () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await pool.run()
            return nil
        }
        defer { pool.triggerGracefulShutdown() }
        return try await body()
    }
}

// MARK: The run.

var serverConfiguration = PostgresTestServer.Configuration()
serverConfiguration.settings = ["max_connections": "200", "fsync": "off"]
serverConfiguration.sharedBuffers = "256MB"
let server = try await PostgresTestServer.start(serverConfiguration)
let connectionString = server.connection.tcpConnectionString
log("loading pgbench tables at scale 10 …")
try await server.pgbench(arguments: ["-i", "-s", "10", "-q"], environment: ["PGHOST": "127.0.0.1"])

// The sweep: the best fixed size under this load.
var sweep: [(size: Int, sample: Sample)] = []
for size in [1, 2, 4, 8, 16, 32, 64] {
    let pool = try makePool(connectionString, name: "sweep-\(size)", size: size, selfSizing: false)
    let sample = try await withPool(pool) {
        _ = try await measure(pool, seconds: 1)  // warm-up
        return try await measure(pool, seconds: phaseSeconds)
    }
    sweep.append((size, sample))
    log("sweep: fixed \(size): \(format(sample.queriesPerSecond, 0)) q/s, p99 \(format(sample.p99Milliseconds)) ms")
}
let bestFixedSize = sweep.max { $0.sample.queriesPerSecond < $1.sample.queriesPerSecond }!.size

let fixed = try makePool(connectionString, name: "fixed", size: bestFixedSize, selfSizing: false)
let selfSizing = try makePool(connectionString, name: "selfsize", size: 64, selfSizing: true)
let fixed64 = try makePool(connectionString, name: "fixed64", size: 64, selfSizing: false)

enum Contender: String, CaseIterable {
    case fixed, selfsize, fixed64
}
var samples: [Contender: [Sample]] = [:]
var effectiveMaximums: [Double] = []

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await fixed.run() }
    group.addTask { try await selfSizing.run() }
    group.addTask { try await fixed64.run() }
    // Warm-up: connections open, statements prepared; the self-sizing pool gets twice as long to find its size.
    _ = try await measure(fixed, seconds: 1)
    _ = try await measure(fixed64, seconds: 1)
    _ = try await measure(selfSizing, seconds: 2 * phaseSeconds)
    log("self-sizing warm-up: effective maximum \(selfSizing.statistics.pool.effectiveMaximumSize)")
    for round in 0..<rounds {
        for index in 0..<3 {
            let contender = Contender.allCases[(index + round) % 3]
            let pool = switch contender {
            case .fixed: fixed
            case .selfsize: selfSizing
            case .fixed64: fixed64
            }
            let sample = try await measure(pool, seconds: phaseSeconds)
            samples[contender, default: []].append(sample)
            var note = ""
            if contender == .selfsize {
                let limit = selfSizing.statistics.pool.effectiveMaximumSize
                effectiveMaximums.append(Double(limit))
                note = ", effective maximum \(limit)"
            }
            log("round \(round + 1)/\(rounds) \(contender.rawValue): \(format(sample.queriesPerSecond, 0)) q/s, "
                + "p99 \(format(sample.p99Milliseconds)) ms\(note)")
        }
    }
    fixed.triggerGracefulShutdown()
    selfSizing.triggerGracefulShutdown()
    fixed64.triggerGracefulShutdown()
    try await group.waitForAll()
}
try await server.stop()

let finalSamples = samples
func ratio(_ contender: Contender, _ value: KeyPath<Sample, Double>) -> Double {
    median(zip(finalSamples[contender]!, finalSamples[.fixed]!).map { $0[keyPath: value] / $1[keyPath: value] })
}

print("")
print("Point select, scale 10, TCP loopback, \(clients) clients in a closed loop, \(rounds) rounds × "
    + "\(phaseSeconds) s per phase, interleaved.")
print("Best fixed size from the sweep (most throughput): \(bestFixedSize).")
print("")
print("pool                      q/s (median)   p50 ms   p99 ms")
for contender in Contender.allCases {
    let series = samples[contender]!
    let name = switch contender {
    case .fixed: "fixed \(bestFixedSize) (best)"
    case .selfsize: "self-sizing, max 64"
    case .fixed64: "fixed 64"
    }
    print(name.padding(toLength: 26, withPad: " ", startingAt: 0)
        + format(median(series.map(\.queriesPerSecond)), 0).padding(toLength: 15, withPad: " ", startingAt: 0)
        + format(median(series.map(\.p50Milliseconds))).padding(toLength: 9, withPad: " ", startingAt: 0)
        + format(median(series.map(\.p99Milliseconds))))
}
print("")
print("pg.selfsize.best_fixed_size=\(bestFixedSize)")
print("pg.selfsize.effective_max_median=\(format(median(effectiveMaximums), 1))")
print("pg.selfsize.throughput_ratio_vs_best_fixed=\(format(ratio(.selfsize, \.queriesPerSecond)))")
print("pg.selfsize.p99_ratio_vs_best_fixed=\(format(ratio(.selfsize, \.p99Milliseconds)))")
print("pg.fixed64.throughput_ratio_vs_best_fixed=\(format(ratio(.fixed64, \.queriesPerSecond)))")
print("pg.fixed64.p99_ratio_vs_best_fixed=\(format(ratio(.fixed64, \.p99Milliseconds)))")
