import Logging
import ReservoirPostgres
import Reservoir

/// Measures a database's throughput curve: a closed-loop load through a `PostgresPool` at increasing pool sizes.
///
/// At each size `n` the pool holds `n` warm connections and `n` clients each send their next query as soon as the
/// previous one returns (a closed loop, so the concurrency is exactly `n`). A short warm-up precedes each
/// measurement so that statement preparation and connection set-up are not counted.
public struct LoadCurveMeasurement: Sendable {
    /// What to send: a fixed statement, or the pgbench point select with a random account id.
    public struct Workload: Sendable {
        let makeQuery: @Sendable (inout SystemRandomNumberGenerator) -> PostgresQuery
        /// How the workload is shown in progress lines and the report.
        public let description: String

        /// The statement as given, sent without parameters.
        ///
        /// - Parameter sql: the SQL text; the user chose it, so it is sent as it is.
        /// - Returns: the workload.
        public static func statement(_ sql: String) -> Workload {
            Workload(makeQuery: { _ in PostgresQuery(unsafeSQL: sql) }, description: sql)
        }

        /// pgbench's `-S` transaction: `SELECT abalance FROM pgbench_accounts WHERE aid = $1` with a random aid.
        ///
        /// - Parameter scale: pgbench's scale factor (100,000 accounts per unit).
        /// - Returns: the workload.
        public static func pgbenchPointSelect(scale: Int) -> Workload {
            let accounts = Int32(max(1, scale) * 100_000)
            return Workload(
                makeQuery: { random in
                    let aid = Int32.random(in: 1...accounts, using: &random)
                    return "SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)"
                },
                description: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
            )
        }
    }

    /// The connection to measure.
    public var connection: PostgresConnection.Configuration
    /// What to send.
    public var workload: Workload
    /// The pool sizes to measure, in order.
    public var sizes: [Int]
    /// How long each size is measured at least (longer when the query is slow, see ``stepTiming(requested:latency:)``).
    public var durationPerSize: Duration
    /// How long each size runs at least before the measurement starts.
    public var warmUp: Duration
    /// Whether the statement may write; when `false` every connection runs with `default_transaction_read_only`.
    public var allowWrites: Bool

    /// Creates a measurement.
    ///
    /// - Parameters:
    ///   - connection: the database.
    ///   - workload: what to send.
    ///   - sizes: the pool sizes, each ≥ 1.
    ///   - durationPerSize: the measured time per size, at least.
    ///   - warmUp: the unmeasured time before it, at least.
    ///   - allowWrites: whether the statement may write (`false`: connections are read-only).
    public init(
        connection: PostgresConnection.Configuration,
        workload: Workload,
        sizes: [Int],
        durationPerSize: Duration,
        warmUp: Duration = .milliseconds(300),
        allowWrites: Bool = false
    ) {
        self.connection = connection
        self.workload = workload
        self.sizes = sizes
        self.durationPerSize = durationPerSize
        self.warmUp = warmUp
        self.allowWrites = allowWrites
    }

    /// The sizes 1, 2, 4, … up to `limit`, with `limit` itself last when it is not a power of two.
    ///
    /// - Parameter limit: the largest size, ≥ 1.
    /// - Returns: the sizes.
    public static func doublingSizes(upTo limit: Int) -> [Int] {
        var sizes: [Int] = []
        var size = 1
        while size <= limit {
            sizes.append(size)
            size *= 2
        }
        if let last = sizes.last, last < limit { sizes.append(limit) }
        return sizes
    }

    /// Runs the measurement against the database.
    ///
    /// - Parameters:
    ///   - timing: receives the step timing chosen from the probed latency, before the first step.
    ///   - progress: called after each size with the measured point, for progress lines.
    /// - Returns: one point per size.
    /// - Throws: `PostgresError` when the database fails a query (a measurement that errors is not a measurement),
    ///   `ResourcePoolError` when connections cannot be opened.
    public func run(
        timing: @Sendable (StepTiming) -> Void = { _ in },
        progress: @Sendable (LoadPoint) -> Void = { _ in }
    ) async throws -> [LoadPoint] {
        try await Self.run(
            runner: PostgresStepRunner(connection: readOnlyConnection(), workload: workload),
            sizes: sizes,
            requestedDuration: durationPerSize,
            requestedWarmUp: warmUp,
            timing: timing,
            progress: progress
        )
    }

    /// The connection as measured: read-only unless writes are allowed.
    func readOnlyConnection() throws -> PostgresConnection.Configuration {
        guard !allowWrites else { return connection }
        var configuration = connection
        let options = configuration["options"].map { $0 + " " } ?? ""
        try configuration.set("options", to: options + "-c default_transaction_read_only=on")
        return configuration
    }

    /// How long one step runs, sized to the query's latency.
    public struct StepTiming: Sendable, Hashable {
        /// The latency of one query alone, as probed.
        public var probedLatency: Duration
        /// The unmeasured time at the start of each step.
        public var warmUp: Duration
        /// The measured time of each step.
        public var duration: Duration
    }

    /// A step lasts at least `requested`, and at least 20 of the probed query latencies, so that a slow query still
    /// completes often enough in the window to be counted; the warm-up lasts at least 3 latencies.
    ///
    /// - Parameters:
    ///   - requested: the duration asked for.
    ///   - requestedWarmUp: the warm-up asked for.
    ///   - latency: one query's latency alone.
    /// - Returns: the timing.
    static func stepTiming(requested: Duration, requestedWarmUp: Duration, latency: Duration) -> StepTiming {
        StepTiming(
            probedLatency: latency,
            warmUp: max(requestedWarmUp, latency * 3),
            duration: max(requested, latency * 20)
        )
    }

    /// The measurement loop shared by the database and the simulated one in the tests: probe the latency, size the
    /// steps to it, warm up at a middle size (unmeasured), then measure each size.
    static func run(
        runner: some LoadStepRunner,
        sizes: [Int],
        requestedDuration: Duration,
        requestedWarmUp: Duration,
        timing: @Sendable (StepTiming) -> Void = { _ in },
        progress: @Sendable (LoadPoint) -> Void = { _ in }
    ) async throws -> [LoadPoint] {
        let latency = try await runner.probeLatency()
        let firstTiming = Self.stepTiming(
            requested: requestedDuration,
            requestedWarmUp: requestedWarmUp,
            latency: latency
        )
        timing(firstTiming)
        // Warm the server (caches, statistics, a checkpoint after loading) at a middle size, unmeasured, so that the
        // first measured size does not pay for it.
        if let warmUpSize = sizes.dropFirst(sizes.count / 2).first {
            _ = try await runner.runStep(size: warmUpSize, warmUp: firstTiming.warmUp, duration: firstTiming.warmUp)
        }
        var points: [LoadPoint] = []
        var stepTiming = firstTiming
        for size in sizes {
            // Latency grows with the size, at worst in proportion to it once the database is saturated: size the
            // step to the latency the last point predicts for this size, so that a large size still completes
            // enough queries in its window.
            if let last = points.last, last.latencyP50 > 0 {
                let predicted = Duration.seconds(last.latencyP50 * Double(size) / Double(last.concurrency))
                stepTiming = Self.stepTiming(
                    requested: requestedDuration,
                    requestedWarmUp: requestedWarmUp,
                    latency: max(latency, predicted)
                )
            }
            let record = try await runner.runStep(
                size: size,
                warmUp: stepTiming.warmUp,
                duration: stepTiming.duration
            )
            let point = record.point(concurrency: size)
            progress(point)
            points.append(point)
        }
        return points
    }
}

/// Runs closed-loop steps against something that answers queries: the database, or a simulation in the tests.
protocol LoadStepRunner: Sendable {
    /// The latency of one query with nothing else running (the median of a few).
    func probeLatency() async throws -> Duration
    /// Runs `size` clients in a closed loop for `warmUp + duration` and records every query.
    func runStep(size: Int, warmUp: Duration, duration: Duration) async throws -> ClosedLoopRecord
}

/// The queries of one closed-loop step: a query counts when it finishes inside the measured window (after the
/// warm-up, before its end), whenever it started, so a query slower than the window still counts where it ends and
/// throughput is completions over the window's length.
struct ClosedLoopRecord: Sendable {
    /// Where the measured window starts and ends, as offsets from the step's start.
    let windowStart: Duration
    let windowEnd: Duration
    private(set) var latencies = LatencyHistogram()

    init(warmUp: Duration, duration: Duration) {
        self.windowStart = warmUp
        self.windowEnd = warmUp + duration
    }

    /// Records one query by its start and end, as offsets from the step's start.
    mutating func record(started: Duration, finished: Duration) {
        guard finished >= windowStart, finished <= windowEnd else { return }
        latencies.record(finished - started)
    }

    /// Whether a client should start another query at this offset.
    func shouldStart(at offset: Duration) -> Bool { offset < windowEnd }

    mutating func merge(_ other: ClosedLoopRecord) {
        latencies.merge(other.latencies)
    }

    /// The measured point.
    func point(concurrency: Int) -> LoadPoint {
        LoadPoint(
            concurrency: concurrency,
            throughput: Double(latencies.recordedCount) / (windowEnd - windowStart).seconds,
            latencyP50: latencies.quantileSeconds(0.5),
            latencyP99: latencies.quantileSeconds(0.99)
        )
    }
}

/// Closed-loop steps through a `PostgresPool` of exactly `size` warm connections.
struct PostgresStepRunner: LoadStepRunner {
    var connection: PostgresConnection.Configuration
    var workload: LoadCurveMeasurement.Workload

    func probeLatency() async throws -> Duration {
        try await withPool(size: 1) { pool in
            let clock = ContinuousClock()
            var random = SystemRandomNumberGenerator()
            var samples: [Duration] = []
            // Three queries, the first of which also prepares the statement; the median of the three.
            for _ in 0..<3 {
                let started = clock.now
                try await pool.query(workload.makeQuery(&random))
                samples.append(clock.now - started)
            }
            return samples.sorted()[1]
        }
    }

    func runStep(size: Int, warmUp: Duration, duration: Duration) async throws -> ClosedLoopRecord {
        let workload = self.workload
        return try await withPool(size: size) { pool in
            let clock = ContinuousClock()
            let start = clock.now
            return try await withThrowingTaskGroup(of: ClosedLoopRecord.self) { clients in
                for _ in 0..<size {
                    clients.addTask {
                        var random = SystemRandomNumberGenerator()
                        var record = ClosedLoopRecord(warmUp: warmUp, duration: duration)
                        while true {
                            let started = clock.now - start
                            if !record.shouldStart(at: started) { break }
                            try await pool.query(workload.makeQuery(&random))
                            record.record(started: started, finished: clock.now - start)
                        }
                        return record
                    }
                }
                var merged = ClosedLoopRecord(warmUp: warmUp, duration: duration)
                for try await record in clients { merged.merge(record) }
                return merged
            }
        }
    }

    private func withPool<Result: Sendable>(
        size: Int,
        _ body: @Sendable @escaping (PostgresPool) async throws -> Result
    ) async throws -> Result {
        var configuration = PostgresPool.Configuration(connection: connection, name: "reservoir-advise")
        configuration.pool.minimumSize = size
        configuration.pool.maximumSize = size
        configuration.pool.maximumConcurrentCreations = min(size, 8)
        // A slow query must not turn into an acquire timeout: every client has its own connection.
        configuration.pool.acquireTimeout = .seconds(600)
        let pool = try PostgresPool(configuration: configuration, logger: Logger.silent)
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask {
                try await pool.run()
                return nil
            }
            defer { pool.triggerGracefulShutdown() }
            return try await body(pool)
        }
    }
}
