// bench-postgres: the point select of `pgbench -S` (SELECT abalance FROM pgbench_accounts WHERE aid = $1, random
// aid, scale 10) through Reservoir's PostgresPool, postgres-nio 1.33.2's PostgresClient and pgbench itself
// (`-S -M prepared -j 2`, C and libpq, one connection per client), at 1, 8 and 64 concurrent clients, all over TCP
// loopback to the same throwaway server, interleaved in rounds (the order rotates every round). Plus pipelined
// batches of 10 through PostgresPool's pipeline API (independent statements, and one transaction) against the
// unpipelined rate at 8 clients.
//
// Client cost per query comes from getrusage: RUSAGE_SELF around the in-process phases (PostgresPool,
// PostgresClient), RUSAGE_CHILDREN around pgbench (the tool is a child of this process). CPU is user + system time;
// user time alone is shown beside it (the client's own code, without the kernel's socket and scheduling work);
// context switches are voluntary + involuntary. The server's CPU per query is the machine's busy time (/proc/stat,
// without `nice` time) less the client's: with client and server on the same two cores, the machine's busy share says
// whether a phase was bound by CPU (near 1) or waited (well below 1).
//
// Plus pgbench's TPC-B-like transaction (`-b tpcb-like -M prepared`: five statements between BEGIN and COMMIT) at 8
// and 64 clients, against the same transaction through `pool.withTransaction` (its body on the connection's thread)
// from tasks on the cooperative pool and from tasks on `pool.taskExecutor` for their whole loop ("pinned"), and, for
// contrast, through `pool.withConnection` and the connection's `withTransaction` from a task on the cooperative pool,
// interleaved likewise. Its CPU and context switches are per transaction.
//
// Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS per phase (default 2), BENCH_CONCURRENCY (e.g. "1,8,64"),
// BENCH_SYSTEMS (e.g. "ours" to profile one client alone; default all four: "ours,pinned,nio,pgbench", where
// "pinned" is PostgresPool with each client task preferring `pool.taskExecutor`, the I/O threads),
// BENCH_TPCB_CONCURRENCY (default "8,64"; empty skips TPC-B), BENCH_PHASES (default "select,pipeline,tpcb").
import Foundation
import Glibc
import ReservoirPostgres
import ReservoirPostgresTestKit

let environment = ProcessInfo.processInfo.environment
let rounds = max(1, Int(environment["BENCH_ROUNDS"] ?? "") ?? 3)
let phaseSeconds = max(1, Int(environment["BENCH_SECONDS"] ?? "") ?? 2)
let concurrencies = (environment["BENCH_CONCURRENCY"] ?? "1,8,64").split(separator: ",").compactMap { Int($0) }
let selectedSystems = Set((environment["BENCH_SYSTEMS"] ?? "ours,pinned,nio,pgbench").split(separator: ",").map(String.init))
let tpcbConcurrencies = (environment["BENCH_TPCB_CONCURRENCY"] ?? "8,64").split(separator: ",").compactMap { Int($0) }
let phases = Set((environment["BENCH_PHASES"] ?? "select,pipeline,tpcb").split(separator: ",").map(String.init))
let poolConnections = 8
let accounts: Int32 = 1_000_000  // pgbench: 100 000 rows per scale unit, scale 10

// MARK: Measuring.

struct Usage {
    var cpuSeconds: Double
    /// User time alone: the client's own code (Swift, libpq, libc), without the kernel's socket and scheduling work.
    var userSeconds: Double
    var contextSwitches: Int

    static func current(_ who: Int32) -> Usage {
        var usage = rusage()
        getrusage(__rusage_who_t(who), &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        return Usage(cpuSeconds: cpu, userSeconds: user, contextSwitches: usage.ru_nvcsw + usage.ru_nivcsw)
    }
}

/// The machine's busy time from /proc/stat: user, system, interrupt and softirq time of every processor, without
/// `nice` time (the busy loops of a loaded run are `nice -n 19`). During a phase this is the client's and the server's
/// CPU (and the little anything else uses): the server's share is what remains after the client's own.
enum MachineUsage {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func busySeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return .nan }
        // cpu user nice system idle iowait irq softirq steal ...
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 7 else { return .nan }
        return (fields[0] + fields[2] + fields[5] + fields[6]) / ticksPerSecond
    }
}

/// One measured phase.
struct Sample {
    var queriesPerSecond: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var cpuMicrosecondsPerQuery: Double
    var userMicrosecondsPerQuery: Double
    var contextSwitchesPerQuery: Double
    /// The machine's busy CPU per query in the same phase (client, server and anything else, without `nice` time).
    var machineMicrosecondsPerQuery: Double = .nan

    /// The server's CPU per query: the machine's, less the client's.
    var serverMicrosecondsPerQuery: Double { machineMicrosecondsPerQuery - cpuMicrosecondsPerQuery }

    /// The share of the machine's processors kept busy (1 = every processor all the time): well below 1, the phase
    /// waited rather than computed.
    var machineShare: Double {
        machineMicrosecondsPerQuery * queriesPerSecond / 1e6 / Double(ProcessInfo.processInfo.activeProcessorCount)
    }
}

func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func percentile(_ sorted: [UInt64], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.down)))
    return Double(sorted[index]) / 1000
}

/// A small per-task random generator (xorshift64*): no lock, no allocation.
struct RandomAccount {
    var state: UInt64
    mutating func next() -> Int32 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int32(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) % UInt64(accounts)) + 1
    }
}

/// Runs `clients` tasks, each calling `operation` in a loop for the phase; `queriesPerCall` is 10 for batches.
func measureInProcess(
    clients: Int,
    queriesPerCall: Int = 1,
    seconds: Int = phaseSeconds,
    _ operation: @escaping @Sendable (inout RandomAccount) async throws -> Int32
) async throws -> Sample {
    try await measureInProcess(
        clients: clients, queriesPerCall: queriesPerCall, seconds: seconds,
        makeRandom: { RandomAccount(state: $0) }, operation)
}

/// Runs `clients` tasks, each calling `operation` with its own random state in a loop for the phase.
func measureInProcess<Random>(
    clients: Int,
    queriesPerCall: Int = 1,
    seconds: Int = phaseSeconds,
    executor: (any TaskExecutor)? = nil,
    makeRandom: @escaping @Sendable (UInt64) -> Random,
    _ operation: @escaping @Sendable (inout Random) async throws -> Int32
) async throws -> Sample {
    let before = Usage.current(RUSAGE_SELF.rawValue)
    let machineBefore = MachineUsage.busySeconds()
    let start = monotonicNanoseconds()
    let deadline = start + UInt64(seconds) * 1_000_000_000
    let perTask = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for client in 0..<clients {
            group.addTask(executorPreference: executor) {
                var random = makeRandom(0x9E37_79B9_7F4A_7C15 &+ UInt64(client) &* 7919)
                var latencies: [UInt64] = []
                latencies.reserveCapacity(1 << 16)
                var checksum: Int32 = 0
                while true {
                    let begin = monotonicNanoseconds()
                    if begin >= deadline { break }
                    checksum &+= try await operation(&random)
                    latencies.append(monotonicNanoseconds() - begin)
                }
                if checksum == .min { print("") }  // keeps the results alive
                return latencies
            }
        }
        var all: [[UInt64]] = []
        for try await latencies in group { all.append(latencies) }
        return all
    }
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    let after = Usage.current(RUSAGE_SELF.rawValue)
    let machineAfter = MachineUsage.busySeconds()
    let latencies = perTask.flatMap { $0 }.sorted()
    let queries = Double(latencies.count * queriesPerCall)
    return Sample(
        queriesPerSecond: queries / elapsed,
        p50Microseconds: percentile(latencies, 0.5),
        p99Microseconds: percentile(latencies, 0.99),
        cpuMicrosecondsPerQuery: (after.cpuSeconds - before.cpuSeconds) * 1e6 / queries,
        userMicrosecondsPerQuery: (after.userSeconds - before.userSeconds) * 1e6 / queries,
        contextSwitchesPerQuery: Double(after.contextSwitches - before.contextSwitches) / queries,
        machineMicrosecondsPerQuery: (machineAfter - machineBefore) * 1e6 / queries
    )
}

/// Runs pgbench for one phase and reads its per-transaction log for the latency percentiles.
func measurePgbench(
    server: PostgresTestServer, clients: Int, label: String, script: [String] = ["-S"]
) async throws -> Sample {
    let logDirectory = server.directory + "/pgbench-logs"
    try? FileManager.default.removeItem(atPath: logDirectory)
    try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
    let prefix = logDirectory + "/" + label
    let before = Usage.current(RUSAGE_CHILDREN.rawValue)
    let machineBefore = MachineUsage.busySeconds()
    let output = try await server.pgbench(
        arguments: [
            "-n"] + script + ["-M", "prepared", "-j", "\(min(2, clients))", "-c", "\(clients)", "-T", "\(phaseSeconds)",
            "-l", "--log-prefix=\(prefix)",
        ],
        environment: ["PGHOST": "127.0.0.1"]
    )
    let after = Usage.current(RUSAGE_CHILDREN.rawValue)
    let machineAfter = MachineUsage.busySeconds()
    var tps = Double.nan
    var transactions = 0
    for line in output.standardOutput.split(separator: "\n") {
        if line.hasPrefix("tps = "), let value = Double(line.dropFirst(6).split(separator: " ")[0]) { tps = value }
        if line.hasPrefix("number of transactions actually processed: "),
            let value = Int(line.split(separator: " ").last?.split(separator: "/").first ?? "")
        {
            transactions = value
        }
    }
    var latencies: [UInt64] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: logDirectory) where file.hasPrefix(label) {
        let text = try String(contentsOfFile: logDirectory + "/" + file, encoding: .utf8)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, let microseconds = UInt64(fields[2]) { latencies.append(microseconds * 1000) }
        }
    }
    try? FileManager.default.removeItem(atPath: logDirectory)
    latencies.sort()
    let queries = Double(max(transactions, latencies.count, 1))
    return Sample(
        queriesPerSecond: tps,
        p50Microseconds: percentile(latencies, 0.5),
        p99Microseconds: percentile(latencies, 0.99),
        cpuMicrosecondsPerQuery: (after.cpuSeconds - before.cpuSeconds) * 1e6 / queries,
        userMicrosecondsPerQuery: (after.userSeconds - before.userSeconds) * 1e6 / queries,
        contextSwitchesPerQuery: Double(after.contextSwitches - before.contextSwitches) / queries,
        machineMicrosecondsPerQuery: (machineAfter - machineBefore) * 1e6 / queries
    )
}

// MARK: Reporting.

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ value: Double, _ decimals: Int = 1) -> String {
    String(format: "%.\(decimals)f", value)
}

struct Series {
    var samples: [Sample] = []
    var qps: Double { median(samples.map(\.queriesPerSecond)) }
    var spread: String {
        let values = samples.map(\.queriesPerSecond)
        return "\(format(values.min() ?? .nan, 0))–\(format(values.max() ?? .nan, 0))"
    }
    var row: [String] {
        [
            format(qps, 0), spread, format(median(samples.map(\.p50Microseconds))),
            format(median(samples.map(\.p99Microseconds))), format(median(samples.map(\.cpuMicrosecondsPerQuery))),
            format(median(samples.map(\.userMicrosecondsPerQuery))), format(median(samples.map(\.contextSwitchesPerQuery)), 2),
            format(median(samples.map(\.serverMicrosecondsPerQuery))), format(median(samples.map(\.machineShare)), 2),
        ]
    }
}

// MARK: The run.

var serverConfiguration = PostgresTestServer.Configuration()
serverConfiguration.settings = ["max_connections": "120", "fsync": "off"]
serverConfiguration.sharedBuffers = "256MB"
let server = try await PostgresTestServer.start(serverConfiguration)
let details = server.connection
FileHandle.standardError.write(Data("loading pgbench tables at scale 10 …\n".utf8))
try await server.pgbench(arguments: ["-i", "-s", "10", "-q"], environment: ["PGHOST": "127.0.0.1"])

let ours = try OurPoolRunner(connectionString: details.tcpConnectionString, connections: poolConnections)
let nio = NIOClientRunner(
    host: "127.0.0.1", port: details.port, user: details.user, password: details.password,
    database: details.database, connections: poolConnections)

enum System: String, CaseIterable {
    case ours = "PostgresPool"
    case pinned = "PostgresPool, tasks on pool.taskExecutor"
    case nio = "PostgresClient"
    case pgbench = "pgbench"

    var key: String {
        switch self {
        case .ours: "ours"
        case .pinned: "pinned"
        case .nio: "nio"
        case .pgbench: "pgbench"
        }
    }

    /// The prefix of its `name=value` lines.
    var lineKey: String {
        switch self {
        case .ours: "postgres_pool"
        case .pinned: "postgres_pool_pinned"
        case .nio: "postgres_nio"
        case .pgbench: "pgbench"
        }
    }
}

enum TPCBSystem: String, CaseIterable {
    case ours = "PostgresPool withTransaction"
    case pinned = "PostgresPool withTransaction, tasks on pool.taskExecutor"
    case unpinned = "withConnection + connection.withTransaction, not pinned"
    case pgbench = "pgbench"
}

var results: [Int: [System: Series]] = [:]
var tpcbResults: [Int: [TPCBSystem: Series]] = [:]
var unpipelined = Series()
var pipelined = Series()
var pipelinedTransaction = Series()

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await ours.run() }
    group.addTask { await nio.run() }

    // Warm-up: connections open, statements prepared, caches hot.
    FileHandle.standardError.write(Data("warming up …\n".utf8))
    _ = try await measureInProcess(clients: 8, seconds: 1) { try await ours.select(aid: $0.next()) }
    _ = try await measureInProcess(clients: 8, seconds: 1) { try await nio.select(aid: $0.next()) }
    _ = try await measurePgbench(server: server, clients: 8, label: "warmup")

    if phases.contains("tpcb"), !tpcbConcurrencies.isEmpty {
        _ = try await measureInProcess(clients: 8, seconds: 1, makeRandom: { TPCBRandom(state: $0) }) {
            try await ours.tpcb(&$0, unpinned: false)
        }
    }

    for round in 0..<rounds {
        for clients in concurrencies where phases.contains("select") {
            let count = System.allCases.count
            let order = (0..<count).map { System.allCases[($0 + round) % count] }
            for system in order where selectedSystems.contains(system.key) {
                let sample: Sample
                switch system {
                case .ours:
                    sample = try await measureInProcess(clients: clients) { try await ours.select(aid: $0.next()) }
                case .pinned:
                    // Each client task prefers the pool's I/O executor for its whole loop (as a request handler
                    // would for its whole request), not per statement.
                    sample = try await measureInProcess(
                        clients: clients, executor: ours.pool.taskExecutor, makeRandom: { RandomAccount(state: $0) }
                    ) { try await ours.select(aid: $0.next()) }
                case .nio:
                    sample = try await measureInProcess(clients: clients) { try await nio.select(aid: $0.next()) }
                case .pgbench:
                    sample = try await measurePgbench(server: server, clients: clients, label: "c\(clients)r\(round)")
                }
                results[clients, default: [:]][system, default: Series()].samples.append(sample)
                FileHandle.standardError.write(
                    Data("round \(round + 1)/\(rounds) c\(clients) \(system.rawValue): \(format(sample.queriesPerSecond, 0)) q/s\n".utf8))
            }
        }
        // TPC-B-like transactions: ours through withTransaction (from tasks on the cooperative pool, and from tasks
        // on pool.taskExecutor for their whole loop), ours unpinned, and pgbench; the order rotates.
        for clients in tpcbConcurrencies where phases.contains("tpcb") {
            let count = TPCBSystem.allCases.count
            for system in (0..<count).map({ TPCBSystem.allCases[($0 + round) % count] }) {
                let sample: Sample
                switch system {
                case .ours, .pinned, .unpinned:
                    let unpinned = system == .unpinned
                    sample = try await measureInProcess(
                        clients: clients, executor: system == .pinned ? ours.pool.taskExecutor : nil,
                        makeRandom: { TPCBRandom(state: $0) }
                    ) { try await ours.tpcb(&$0, unpinned: unpinned) }
                case .pgbench:
                    sample = try await measurePgbench(
                        server: server, clients: clients, label: "tpcb\(clients)r\(round)",
                        script: ["-b", "tpcb-like"])
                }
                tpcbResults[clients, default: [:]][system, default: Series()].samples.append(sample)
                FileHandle.standardError.write(
                    Data("round \(round + 1)/\(rounds) tpcb c\(clients) \(system.rawValue): \(format(sample.queriesPerSecond, 0)) tx/s\n".utf8))
            }
        }
        // Unpipelined, batches of independent statements, batches run as one transaction; the order rotates.
        for phase in (0..<3).map({ ($0 + round) % 3 }) where phases.contains("pipeline") {
            switch phase {
            case 0:
                unpipelined.samples.append(
                    try await measureInProcess(clients: poolConnections) { try await ours.select(aid: $0.next()) })
            default:
                let mode: PostgresPipelineMode = phase == 1 ? .independent : .transaction
                let sample = try await measureInProcess(clients: poolConnections, queriesPerCall: 10) { random in
                    var aids: [Int32] = []
                    aids.reserveCapacity(10)
                    for _ in 0..<10 { aids.append(random.next()) }
                    return try await ours.selectBatch(aids: aids, mode: mode)
                }
                if phase == 1 { pipelined.samples.append(sample) } else { pipelinedTransaction.samples.append(sample) }
            }
        }
    }
    ours.shutdown()
    group.cancelAll()
}

print("")
print("Point select, scale 10, TCP loopback, \(rounds) rounds × \(phaseSeconds) s per phase, interleaved.")
print("PostgresPool and PostgresClient: at most \(poolConnections) connections; pgbench: one connection per client.")
print("Client cost per query from getrusage (user+system CPU; voluntary+involuntary context switches); the server's")
print("CPU per query: the machine's busy time (/proc/stat, without nice time) less the client's; machine used: the")
print("share of all processors busy during the phase.")
print("")
let header = ["clients", "client", "q/s (median)", "spread", "p50 µs", "p99 µs", "CPU µs/q", "user µs/q", "ctx sw/q", "server CPU µs/q", "machine used"]
if phases.contains("select") || phases.contains("pipeline") { print(header.joined(separator: " | ")) }
for clients in concurrencies {
    for system in System.allCases {
        guard let series = results[clients]?[system] else { continue }
        print((["\(clients)", system.rawValue] + series.row).joined(separator: " | "))
    }
}
if phases.contains("pipeline") {
    print("\(poolConnections) | PostgresPool unpipelined | " + unpipelined.row.joined(separator: " | "))
    print("\(poolConnections) | PostgresPool batch of 10 | " + pipelined.row.joined(separator: " | "))
    print("\(poolConnections) | PostgresPool batch of 10, one transaction | " + pipelinedTransaction.row.joined(separator: " | "))
}
if !tpcbResults.isEmpty {
    print("")
    print("TPC-B-like (pgbench -b tpcb-like -M prepared), scale 10: transactions of five statements; per transaction.")
    print(["clients", "client", "tx/s (median)", "spread", "p50 µs", "p99 µs", "CPU µs/tx", "user µs/tx", "ctx sw/tx", "server CPU µs/tx", "machine used"].joined(separator: " | "))
    for clients in tpcbConcurrencies {
        for system in TPCBSystem.allCases {
            guard let series = tpcbResults[clients]?[system] else { continue }
            print((["\(clients)", system.rawValue] + series.row).joined(separator: " | "))
        }
    }
}
print("")
for clients in tpcbConcurrencies {
    guard let series = tpcbResults[clients] else { continue }
    for (system, key) in [
        (TPCBSystem.ours, "postgres_pool"), (.pinned, "postgres_pool_pinned"), (.unpinned, "postgres_pool_unpinned"),
        (.pgbench, "pgbench"),
    ] {
        guard let sample = series[system] else { continue }
        print("pg.tpcb_c\(clients).\(key).tps=\(format(sample.qps, 0))")
        print("pg.tpcb_c\(clients).\(key).cpu_us_per_transaction=\(format(median(sample.samples.map(\.cpuMicrosecondsPerQuery)), 2))")
        print(
            "pg.tpcb_c\(clients).\(key).server_cpu_us_per_transaction="
                + format(median(sample.samples.map(\.serverMicrosecondsPerQuery)), 2))
        print(
            "pg.tpcb_c\(clients).\(key).context_switches_per_transaction="
                + format(median(sample.samples.map(\.contextSwitchesPerQuery)), 2))
    }
    let pgbench = series[.pgbench]?.qps ?? .nan
    print("pg.tpcb_c\(clients).ratio_vs_pgbench=\(format((series[.ours]?.qps ?? .nan) / pgbench, 2))")
    print("pg.tpcb_c\(clients).pinned_ratio_vs_pgbench=\(format((series[.pinned]?.qps ?? .nan) / pgbench, 2))")
    print("pg.tpcb_c\(clients).unpinned_ratio_vs_pgbench=\(format((series[.unpinned]?.qps ?? .nan) / pgbench, 2))")
}
for clients in concurrencies {
    for system in System.allCases {
        guard let series = results[clients]?[system] else { continue }
        let key = "pg.select_c\(clients).\(system.lineKey)"
        print("\(key).qps=\(format(series.qps, 0))")
        print("\(key).cpu_us_per_query=\(format(median(series.samples.map(\.cpuMicrosecondsPerQuery)), 2))")
        print("\(key).user_cpu_us_per_query=\(format(median(series.samples.map(\.userMicrosecondsPerQuery)), 2))")
        print("\(key).context_switches_per_query=\(format(median(series.samples.map(\.contextSwitchesPerQuery)), 2))")
        print("\(key).server_cpu_us_per_query=\(format(median(series.samples.map(\.serverMicrosecondsPerQuery)), 2))")
        print("\(key).machine_used=\(format(median(series.samples.map(\.machineShare)), 2))")
    }
}
for clients in concurrencies {
    guard let series = results[clients] else { continue }
    let mine = series[.ours]?.qps ?? .nan
    print("pg.select_c\(clients).ratio_vs_postgres_nio=\(format(mine / (series[.nio]?.qps ?? .nan), 2))")
    print("pg.select_c\(clients).ratio_vs_pgbench=\(format(mine / (series[.pgbench]?.qps ?? .nan), 2))")
    let pinned = series[.pinned]?.qps ?? .nan
    print("pg.select_c\(clients).pinned_ratio_vs_postgres_nio=\(format(pinned / (series[.nio]?.qps ?? .nan), 2))")
    print("pg.select_c\(clients).pinned_ratio_vs_pgbench=\(format(pinned / (series[.pgbench]?.qps ?? .nan), 2))")
    print("pg.select_c\(clients).pinned_ratio_vs_postgres_pool=\(format(pinned / mine, 2))")
}
if phases.contains("pipeline") {
    print("pg.pipeline_batch10.qps=\(format(pipelined.qps, 0))")
    print("pg.pipeline_batch10.cpu_us_per_query=\(format(median(pipelined.samples.map(\.cpuMicrosecondsPerQuery)), 2))")
    print("pg.pipeline_batch10_transaction.qps=\(format(pipelinedTransaction.qps, 0))")
    print(
        "pg.pipeline_batch10_transaction.cpu_us_per_query="
            + format(median(pipelinedTransaction.samples.map(\.cpuMicrosecondsPerQuery)), 2)
    )
    print("pg.pipeline_batch10.ratio_vs_unpipelined=\(format(pipelined.qps / unpipelined.qps, 2))")
    print("pg.pipeline_batch10_transaction.ratio_vs_unpipelined=\(format(pipelinedTransaction.qps / unpipelined.qps, 2))")
}
try await server.stop()
