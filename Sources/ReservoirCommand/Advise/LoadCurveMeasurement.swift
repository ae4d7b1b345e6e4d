import Logging
import PostgresPool
import ResourcePool

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
    /// How long each size is measured.
    public var durationPerSize: Duration
    /// How long each size runs before the measurement starts.
    public var warmUp: Duration

    /// Creates a measurement.
    ///
    /// - Parameters:
    ///   - connection: the database.
    ///   - workload: what to send.
    ///   - sizes: the pool sizes, each ≥ 1.
    ///   - durationPerSize: the measured time per size.
    ///   - warmUp: the unmeasured time before it.
    public init(
        connection: PostgresConnection.Configuration,
        workload: Workload,
        sizes: [Int],
        durationPerSize: Duration,
        warmUp: Duration = .milliseconds(300)
    ) {
        self.connection = connection
        self.workload = workload
        self.sizes = sizes
        self.durationPerSize = durationPerSize
        self.warmUp = warmUp
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

    /// Runs the measurement.
    ///
    /// - Parameter progress: called after each size with the measured point, for progress lines.
    /// - Returns: one point per size.
    /// - Throws: `PostgresError` when the database fails a query (a measurement that errors is not a measurement),
    ///   `ResourcePoolError` when connections cannot be opened.
    public func run(progress: @Sendable (LoadPoint) -> Void = { _ in }) async throws -> [LoadPoint] {
        // Warm the server (caches, statistics, a checkpoint after loading) at a middle size, unmeasured, so that the
        // first measured size does not pay for it.
        if let warmUpSize = sizes.dropFirst(sizes.count / 2).first {
            _ = try await measure(size: warmUpSize)
        }
        var points: [LoadPoint] = []
        for size in sizes {
            let point = try await measure(size: size)
            progress(point)
            points.append(point)
        }
        return points
    }

    func measure(size: Int) async throws -> LoadPoint {
        var configuration = PostgresPool.Configuration(connection: connection, name: "reservoir-advise")
        configuration.pool.minimumSize = size
        configuration.pool.maximumSize = size
        configuration.pool.maximumConcurrentCreations = min(size, 8)
        configuration.pool.acquireTimeout = .seconds(30)
        let pool = try PostgresPool(configuration: configuration, logger: Logger.silent)
        let workload = self.workload
        let clock = ContinuousClock()
        let warmUpEnd = clock.now + warmUp
        let end = warmUpEnd + durationPerSize
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            defer { pool.triggerGracefulShutdown() }
            let histogram = try await withThrowingTaskGroup(of: LatencyHistogram.self) { clients in
                for _ in 0..<size {
                    clients.addTask {
                        var random = SystemRandomNumberGenerator()
                        var histogram = LatencyHistogram()
                        while true {
                            let started = clock.now
                            if started >= end { break }
                            try await pool.query(workload.makeQuery(&random))
                            if started >= warmUpEnd {
                                histogram.record(clock.now - started)
                            }
                        }
                        return histogram
                    }
                }
                var merged = LatencyHistogram()
                for try await histogram in clients { merged.merge(histogram) }
                return merged
            }
            return LoadPoint(
                concurrency: size,
                throughput: Double(histogram.recordedCount) / durationPerSize.seconds,
                latencyP50: histogram.quantileSeconds(0.5),
                latencyP99: histogram.quantileSeconds(0.99)
            )
        }
    }
}
