// bench-driver: the cost of one round trip through PostgresConnection against blocking libpq called directly
// from a dedicated thread, for the same prepared statement with the same binary parameter and binary result.
// Both run in the same process against the same throwaway server, interleaved in rounds (alternating which goes
// first), and the summary compares medians of the per-round means. Beside wall time it reports the client's CPU time
// per round trip (getrusage of this process around each round: user + system): wall time depends on how fast an idle
// core wakes up, CPU time is what the driver itself costs and stays stable from round to round.
// Two series: short rounds (BENCH_ROUNDS × BENCH_QUERIES, default 31 × 2000) and long rounds (BENCH_LONG_ROUNDS ×
// BENCH_LONG_QUERIES, default 5 × 20000), whose lines carry `.long_rounds`; see the comment above the measurement.
import CLibPQRaw
import Foundation
import ReservoirPostgres
import ReservoirPostgresTestKit

let arguments = CommandLine.arguments
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 31
let perRound = Int(ProcessInfo.processInfo.environment["BENCH_QUERIES"] ?? "") ?? 2000
let sql = "SELECT $1::int4 + 1"

/// Runs blocking libpq on its own thread; `run(count)` performs `count` round trips and returns the seconds taken.
final class RawLibPQ: @unchecked Sendable {
    // Touched only by the dedicated thread; requests are handed over through the condition below.
    private var connection: OpaquePointer?
    private let condition = NSCondition()
    private var request: Int?
    private var response: Double?
    private var checksum = 0
    private var startupFailure: String?
    private var started = false

    init(conninfo: String) throws {
        let thread = Thread { [self] in
            let connection = PQconnectdb(conninfo)
            if PQstatus(connection) != CONNECTION_OK {
                startupFailure = String(cString: PQerrorMessage(connection))
            } else {
                var type: UInt32 = 23
                let result = PQprepare(connection, "bench", sql, 1, &type)
                if PQresultStatus(result) != PGRES_COMMAND_OK {
                    startupFailure = String(cString: PQerrorMessage(connection))
                }
                PQclear(result)
            }
            self.connection = connection
            condition.lock(); started = true; condition.broadcast(); condition.unlock()
            serve()
        }
        thread.start()
        condition.lock(); while !started { condition.wait() }; condition.unlock()
        if let failure = startupFailure { throw NSError(domain: "raw", code: 1, userInfo: [NSLocalizedDescriptionKey: failure]) }
    }

    private func serve() {
        while true {
            condition.lock()
            while request == nil { condition.wait() }
            let count = request!
            condition.unlock()
            let start = DispatchTime.now().uptimeNanoseconds
            for index in 0..<count {
                var value = Int32(index).bigEndian
                let result = withUnsafeBytes(of: &value) { bytes -> OpaquePointer? in
                    var pointer: UnsafePointer<CChar>? = bytes.baseAddress!.assumingMemoryBound(to: CChar.self)
                    var length: Int32 = 4
                    var format: Int32 = 1
                    return PQexecPrepared(connection, "bench", 1, &pointer, &length, &format, 1)
                }
                if PQresultStatus(result) == PGRES_TUPLES_OK, let value = PQgetvalue(result, 0, 0) {
                    checksum &+= Int(Int32(bigEndian: UnsafeRawPointer(value).loadUnaligned(as: Int32.self)))
                }
                PQclear(result)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            condition.lock()
            request = nil
            response = seconds
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Blocks the calling thread (the benchmark's main thread, not a cooperative one) until the round is done.
    func run(_ count: Int) -> Double {
        condition.lock()
        request = count
        response = nil
        condition.broadcast()
        while response == nil { condition.wait() }
        let seconds = response!
        condition.unlock()
        return seconds
    }
}

func driverRound(_ connection: PostgresConnection, _ count: Int) async throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    var checksum: Int32 = 0
    for index in 0..<count {
        let rows = try await connection.query("SELECT \(Int32(index))::int4 + 1")
        checksum &+= try rows[0].decode(Int32.self, column: 0)
    }
    precondition(checksum != 0 || count == 0)
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// User + system CPU seconds of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

// A throwaway server (Unix socket, as the measurements in DESIGN.md); BENCH_PG points at another one instead.
var server: PostgresTestServer?
let conninfo: String
if let given = ProcessInfo.processInfo.environment["BENCH_PG"] {
    conninfo = given
} else {
    let started = try await PostgresTestServer.start()
    server = started
    conninfo = started.connection.unixSocketConnectionString + " gssencmode=disable"
}
let raw = try RawLibPQ(conninfo: conninfo)
let connection = try await PostgresConnection.connect(configuration: .init(connectionString: conninfo))

// Warm up both paths (statement preparation, caches, CPU frequency).
_ = raw.run(perRound)
_ = try await driverRound(connection, perRound)

func pinnedRound(_ connection: PostgresConnection, _ count: Int) async throws -> Double {
    try await connection.withPinnedExecution { try await driverRound(connection, count) }
}
_ = try await pinnedRound(connection, perRound)

// BENCH_ONLY=raw|pinned|cooperative runs one variant alone (for profiling its CPU cost) and prints no ratio.
if let only = ProcessInfo.processInfo.environment["BENCH_ONLY"] {
    let clock = ContinuousClock()
    let start = clock.now
    let queries = rounds * perRound
    switch only {
    case "raw": _ = await Task.detached { raw.run(queries) }.value
    case "pinned": _ = try await pinnedRound(connection, queries)
    default: _ = try await driverRound(connection, queries)
    }
    print("\(only): \(queries) queries in \(clock.now - start)")
    await connection.close()
    try await server?.stop()
    exit(0)
}

/// One series of interleaved rounds: per-round wall and CPU micros for each variant, and the per-round ratios.
struct Series {
    var raw: [Double] = []
    var cooperative: [Double] = []
    var pinned: [Double] = []
    var cpu: [[Double]] = [[], [], []]  // raw, cooperative, pinned: client CPU µs per round trip
    var cooperativeRatios: [Double] = []
    var pinnedRatios: [Double] = []
}

func measure(rounds: Int, perRound: Int) async throws -> Series {
    var series = Series()
    for round in 0..<rounds {
        // Three variants per round, rotating the order so that none always runs first.
        var seconds = [0.0, 0.0, 0.0]
        for step in 0..<3 {
            let variant = (step + round) % 3
            let cpuBefore = processCPUSeconds()
            switch variant {
            case 0: seconds[0] = await Task.detached { raw.run(perRound) }.value
            case 1: seconds[1] = try await driverRound(connection, perRound)
            default: seconds[2] = try await pinnedRound(connection, perRound)
            }
            series.cpu[variant].append((processCPUSeconds() - cpuBefore) / Double(perRound) * 1e6)
        }
        series.raw.append(seconds[0] / Double(perRound) * 1e6)
        series.cooperative.append(seconds[1] / Double(perRound) * 1e6)
        series.pinned.append(seconds[2] / Double(perRound) * 1e6)
        series.cooperativeRatios.append(seconds[1] / seconds[0])
        series.pinnedRatios.append(seconds[2] / seconds[0])
    }
    return series
}

func row(_ name: String, _ values: [Double]) -> String {
    String(format: "%-34@ median %7.2f µs   p25 %7.2f   p75 %7.2f   min %7.2f   max %7.2f",
           name as NSString, median(values), percentile(values, 0.25), percentile(values, 0.75),
           values.min()!, values.max()!)
}

func ratioLine(_ name: String, _ ratios: [Double]) -> String {
    String(format: "%-34@ median %.3f  p25 %.3f  p75 %.3f  min %.3f  max %.3f", name as NSString,
           median(ratios), percentile(ratios, 0.25), percentile(ratios, 0.75), ratios.min()!, ratios.max()!)
}

func printTable(_ series: Series, rounds: Int, perRound: Int) {
    print("driver round trip: \(sql) with one int4 parameter, binary result; \(rounds) rounds × \(perRound) queries")
    print(row("raw blocking libpq, own thread", series.raw))
    print(row("query, task on connection thread", series.pinned))
    print(row("query, task on cooperative pool", series.cooperative))
    print(row("client CPU, raw libpq", series.cpu[0]))
    print(row("client CPU, pinned", series.cpu[2]))
    print(row("client CPU, cooperative", series.cpu[1]))
    print(ratioLine("ratio pinned / raw (per round)", series.pinnedRatios))
    print(ratioLine("ratio cooperative / raw (per round)", series.cooperativeRatios))
}

func printLines(_ series: Series, prefix: String) {
    print(String(format: "\(prefix).raw_us=%.2f", median(series.raw)))
    print(String(format: "\(prefix).pinned_us=%.2f", median(series.pinned)))
    print(String(format: "\(prefix).cooperative_us=%.2f", median(series.cooperative)))
    print(String(format: "\(prefix).raw_cpu_us=%.2f", median(series.cpu[0])))
    print(String(format: "\(prefix).pinned_cpu_us=%.2f", median(series.cpu[2])))
    print(String(format: "\(prefix).cooperative_cpu_us=%.2f", median(series.cpu[1])))
    print(String(format: "\(prefix).cpu_ratio_pinned_vs_blocking_libpq=%.3f", median(series.cpu[2]) / median(series.cpu[0])))
    print(String(format: "\(prefix).ratio_cooperative_vs_blocking_libpq=%.3f", median(series.cooperativeRatios)))
    print(String(format: "\(prefix).ratio_vs_blocking_libpq=%.3f", median(series.pinnedRatios)))
}

// Short rounds (31 × 2000 by default, tens of milliseconds each) and long rounds (5 × 20000, one to two seconds
// each): on a VM whose cross-vCPU wake-ups are expensive, a thread and the server backend it talks to may share a
// vCPU for a while after the scheduler placed them together, and the load balancer separates them again within a
// second or so. Short rounds catch such placements (raw libpq benefits most: its thread and backend ping-pong
// alone); long rounds show the steady state. BENCH_LONG_ROUNDS=0 skips the long rounds.
let longRounds = Int(ProcessInfo.processInfo.environment["BENCH_LONG_ROUNDS"] ?? "") ?? 5
let longPerRound = Int(ProcessInfo.processInfo.environment["BENCH_LONG_QUERIES"] ?? "") ?? 20000
let short = try await measure(rounds: rounds, perRound: perRound)
let long = longRounds > 0 ? try await measure(rounds: longRounds, perRound: longPerRound) : nil
await connection.close()
try await server?.stop()

printTable(short, rounds: rounds, perRound: perRound)
if let long {
    print("")
    printTable(long, rounds: longRounds, perRound: longPerRound)
}
printLines(short, prefix: "pg.driver_roundtrip")
if let long { printLines(long, prefix: "pg.driver_roundtrip.long_rounds") }
