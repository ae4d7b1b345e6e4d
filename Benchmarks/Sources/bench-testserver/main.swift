// bench-testserver: the time a test waits for a ready, migrated database of its own, with a 20-table schema,
// (a) starting a new PostgresTestServer per test and migrating it, and (b) from the template database of one shared
// server: `withDatabase`'s defaults (a clone with STRATEGY FILE_COPY, the next one made in the background while the
// previous test runs), and clones made on demand with each `CREATE DATABASE` strategy, FILE_COPY and WAL_LOG.
//
// Ready means: the call returned and the database accepts connections. The first query (a new libpq connection and
// `SELECT 1`) and the clean-up (`destroy()` of a server, `DROP DATABASE` of a clone) are timed separately and
// reported beside it. The runs are interleaved: each round clones on demand with both strategies (order
// alternating), then runs two tests back to back with the defaults and records the second (its clone was prepared
// only during the first one's first query and drop), and every CLONES/SERVERS rounds starts a server of its own.
//
// Environment: BENCH_CLONES (default 50 rounds), BENCH_SERVERS (default 10 servers), BENCH_TEMPORARY_DIRECTORY
// (where the servers live; default PostgresTestServer's choice: /dev/shm when it has 2 GiB free, else /tmp).
import Foundation
import ReservoirPostgres
import ReservoirPostgresTestKit

let environment = ProcessInfo.processInfo.environment
let clones = max(1, Int(environment["BENCH_CLONES"] ?? "") ?? 50)
let servers = max(1, Int(environment["BENCH_SERVERS"] ?? "") ?? 10)
let temporaryDirectory = environment["BENCH_TEMPORARY_DIRECTORY"]

/// The schema: 20 tables with a primary key, a foreign key to the previous table, a unique constraint, an index,
/// a check constraint and a default: the shape of an application's migrations.
let schema: [String] = (0..<20).map { index in
    let reference = index == 0 ? "" : "parent_id bigint REFERENCES table_\(index - 1) (id),"
    return """
        CREATE TABLE table_\(index) (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            \(reference)
            code text NOT NULL UNIQUE,
            name text NOT NULL,
            amount numeric(12, 2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            payload jsonb
        );
        CREATE INDEX table_\(index)_created_at ON table_\(index) (created_at);
        """
}
let migrations = PostgresTestServer.Migrations.sql(schema)

func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
}

func format(_ value: Double, _ decimals: Int = 1) -> String {
    String(format: "%.\(decimals)f", value)
}

func log(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Opens a libpq connection and runs `SELECT 1`: the first query a test would make.
func firstQuery(_ connectionString: String) async throws -> Double {
    let start = ContinuousClock.now
    let connection = try await PostgresConnection.connect(configuration: .init(connectionString: connectionString))
    _ = try await connection.query("SELECT 1")
    let elapsed = milliseconds(since: start)
    await connection.close()
    return elapsed
}

struct Sample {
    var ready: Double
    var firstQuery: Double
    var cleanUp: Double
}

struct Timings {
    var ready: [Double] = []
    var firstQuery: [Double] = []
    var cleanUp: [Double] = []

    mutating func append(_ sample: Sample) {
        ready.append(sample.ready)
        firstQuery.append(sample.firstQuery)
        cleanUp.append(sample.cleanUp)
    }

    var row: [String] {
        [
            "\(ready.count)", format(median(ready)), format(ready.min() ?? .nan), format(percentile(ready, 0.9)),
            format(ready.max() ?? .nan), format(median(firstQuery)), format(median(cleanUp)),
        ]
    }
}

let serverConfiguration: PostgresTestServer.Configuration = {
    var configuration = PostgresTestServer.Configuration()
    configuration.temporaryDirectory = temporaryDirectory
    return configuration
}()

/// (a) A new server per test: start, migrate, first query, destroy.
func serverPerTest() async throws -> Sample {
    let start = ContinuousClock.now
    let server = try await PostgresTestServer.start(serverConfiguration)
    // One psql run for the whole schema: the cheapest way to migrate a fresh server.
    try await server.psql(schema.joined(separator: "\n"))
    let ready = milliseconds(since: start)
    let query = try await firstQuery(server.connection.unixSocketConnectionString)
    let cleanUp = ContinuousClock.now
    try await server.destroy()
    return Sample(ready: ready, firstQuery: query, cleanUp: milliseconds(since: cleanUp))
}

/// (b) A database of the shared server: make, first query, drop.
func clone(on server: PostgresTestServer, _ options: PostgresTestServer.DatabaseOptions) async throws -> Sample {
    let start = ContinuousClock.now
    let database = try await server.makeDatabase(migrations: migrations, options: options)
    let ready = milliseconds(since: start)
    let query = try await firstQuery(database.connectionString)
    let cleanUp = ContinuousClock.now
    try await database.drop()
    return Sample(ready: ready, firstQuery: query, cleanUp: milliseconds(since: cleanUp))
}

func cloneOnly(_ strategy: PostgresTestServer.CloneStrategy) -> PostgresTestServer.DatabaseOptions {
    var options = PostgresTestServer.DatabaseOptions(cloneStrategy: strategy)
    options.preparesNextDatabase = false
    return options
}

// MARK: The run.

log("starting the shared server and building the template (20 tables) …")
let shared = try await PostgresTestServer.start(serverConfiguration)
let buildStart = ContinuousClock.now
try await shared.withDatabase(migrations: migrations) { _ in }
let templateBuild = milliseconds(since: buildStart)
let tableCount = try await shared.withDatabase(migrations: migrations) { database in
    try await database.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
}
precondition(tableCount == "20", "the template has \(tableCount) tables, not 20")
log("server folder: \(shared.directory)")

// Warm-up: one of each, unmeasured.
_ = try await clone(on: shared, cloneOnly(.fileCopy))
_ = try await clone(on: shared, cloneOnly(.walLog))
_ = try await clone(on: shared, PostgresTestServer.DatabaseOptions())
_ = try await serverPerTest()

var fileCopy = Timings()
var walLog = Timings()
var defaults = Timings()
var perTest = Timings()
let serverEvery = max(1, clones / servers)
for round in 0..<clones {
    if round % 2 == 0 {
        fileCopy.append(try await clone(on: shared, cloneOnly(.fileCopy)))
        walLog.append(try await clone(on: shared, cloneOnly(.walLog)))
    } else {
        walLog.append(try await clone(on: shared, cloneOnly(.walLog)))
        fileCopy.append(try await clone(on: shared, cloneOnly(.fileCopy)))
    }
    // The defaults, as withDatabase uses them: two tests back to back. The second is recorded: its clone was
    // prepared only while the first one's "test" (its first query and drop) ran.
    _ = try await clone(on: shared, PostgresTestServer.DatabaseOptions())
    defaults.append(try await clone(on: shared, PostgresTestServer.DatabaseOptions()))
    if round % serverEvery == serverEvery - 1 && perTest.ready.count < servers {
        perTest.append(try await serverPerTest())
        log("round \(round + 1)/\(clones): server per test \(format(perTest.ready.last ?? .nan)) ms")
    }
}
while perTest.ready.count < servers {
    perTest.append(try await serverPerTest())
}
try await shared.destroy()

let defaultStrategy = PostgresTestServer.DatabaseOptions().cloneStrategy
let cloneMedian = median(defaults.ready)
let serverMedian = median(perTest.ready)

print("")
print("Time to a ready, migrated database (20 tables), ms; first query = new connection + SELECT 1")
print("")
let header = ["how", "runs", "median", "min", "p90", "max", "first query", "clean-up"]
let rows: [[String]] = [
    ["withDatabase defaults (\(defaultStrategy), next one prepared)"] + defaults.row,
    ["clone on demand, STRATEGY FILE_COPY"] + fileCopy.row,
    ["clone on demand, STRATEGY WAL_LOG"] + walLog.row,
    ["new server per test"] + perTest.row,
]
let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
for line in [header] + rows {
    print(
        line.enumerated().map { column, text in
            column == 0
                ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[column] - text.count) + text
        }.joined(separator: "  ")
    )
}
print("")
print("template build (once per server and migration set): \(format(templateBuild)) ms")
print("")
print("testdb.template_build_ms=\(format(templateBuild))")
print("testdb.clone.on_demand_file_copy_median_ms=\(format(median(fileCopy.ready), 2))")
print("testdb.clone.on_demand_wal_log_median_ms=\(format(median(walLog.ready), 2))")
print("testdb.clone.first_query_median_ms=\(format(median(defaults.firstQuery), 2))")
print("testdb.clone.drop_median_ms=\(format(median(defaults.cleanUp), 2))")
print("testdb.server_per_test.destroy_median_ms=\(format(median(perTest.cleanUp), 1))")
print("testdb.server_per_test.median_ms=\(format(serverMedian, 1))")
print("testdb.server_per_test.runs=\(perTest.ready.count)")
print("testdb.clone.median_ms=\(format(cloneMedian, 2))")
print("testdb.clone.ratio_vs_server_per_test=\(format(serverMedian / cloneMedian, 1))")
