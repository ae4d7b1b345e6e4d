import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit

/// Runs `reservoir advise`: measures the load curve, fits it, prints the advice and writes the SVG report.
public struct AdviseRunner: Sendable {
    /// What to measure.
    public struct Options: Sendable {
        /// The database; `nil` measures a throwaway server loaded with pgbench's tables.
        public var connectionString: String?
        /// The statement to measure; `nil` uses `SELECT 1` on a given database, pgbench's point select on a
        /// throwaway one.
        public var query: String?
        /// The measured time per pool size.
        public var durationPerSize: Duration = .seconds(2)
        /// The largest pool size to measure; `nil` picks one under the server's free connections (at most 64).
        public var maximumSize: Int?
        /// Service instances that will each run a pool against this server.
        public var instances = 1
        /// Connections to keep free besides `superuser_reserved_connections`.
        public var reservedConnections = 0
        /// Where the SVG report goes; `nil` writes none.
        public var reportPath: String? = "reservoir-advise.svg"
        /// pgbench's scale factor for a throwaway server.
        public var pgbenchScale = 5
        /// Whether the measured statement may write. When `false` (the default) every measuring connection runs
        /// with `default_transaction_read_only`, and a statement that writes is refused before any measurement.
        public var allowWrites = false

        /// The defaults: a throwaway server, 2 s per size, one instance.
        public init() {}
    }

    /// The options of this run.
    public var options: Options

    /// Creates a runner.
    ///
    /// - Parameter options: what to measure.
    public init(options: Options) {
        self.options = options
    }

    /// Measures, fits and advises.
    ///
    /// - Parameter progress: receives a line per step (server start, each size measured).
    /// - Returns: the advice and the workload's description.
    /// - Throws: `PostgresError`, `PostgresTestServerError`, `ResourcePoolError` or `AdviceError`.
    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> (PoolSizeAdvice, String) {
        if let reportPath = options.reportPath {
            try Self.checkWritable(reportPath)
        }
        if let connectionString = options.connectionString {
            let configuration = try PostgresConnection.Configuration(connectionString: connectionString)
            return try await run(
                configuration: configuration,
                workload: .statement(options.query ?? "SELECT 1"),
                progress: progress
            )
        }
        progress("starting a throwaway PostgreSQL server and loading pgbench's tables (scale \(options.pgbenchScale))…")
        var serverConfiguration = PostgresTestServer.Configuration()
        serverConfiguration.settings["max_connections"] = "120"
        return try await PostgresTestServer.withServer(serverConfiguration) { server in
            _ = try await server.pgbench(arguments: ["-i", "-q", "-s", String(options.pgbenchScale)])
            let configuration = try PostgresConnection.Configuration(
                connectionString: server.connection.unixSocketConnectionString
            )
            let workload: LoadCurveMeasurement.Workload =
                options.query.map { .statement($0) } ?? .pgbenchPointSelect(scale: options.pgbenchScale)
            return try await run(configuration: configuration, workload: workload, progress: progress)
        }
    }

    func run(
        configuration: PostgresConnection.Configuration,
        workload: LoadCurveMeasurement.Workload,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> (PoolSizeAdvice, String) {
        let report = try await DatabaseCheck.run(configuration: configuration, logger: Logger.silent)
        let budget = ConnectionBudget(
            maxConnections: report.maxConnections,
            reservedConnections: report.reservedConnections + options.reservedConnections,
            instances: options.instances
        )
        // Measure no further than the connections free now, less two for the check and for others.
        let free = max(1, report.freeConnections - options.reservedConnections - 2)
        let limit = min(options.maximumSize ?? 64, free)
        let sizes = LoadCurveMeasurement.doublingSizes(upTo: limit)
        guard sizes.count >= 3 else {
            throw AdviceError(
                description: "only \(free) connection\(free == 1 ? " is" : "s are") free on the server: at least 4 are "
                    + "needed to measure three pool sizes"
            )
        }
        progress("measuring \(workload.description) at pool sizes \(sizes.map(String.init).joined(separator: ", ")) "
            + "(\(DashboardRenderer.fixed(options.durationPerSize.seconds, 1)) s each)")
        let measurement = LoadCurveMeasurement(
            connection: configuration,
            workload: workload,
            sizes: sizes,
            durationPerSize: options.durationPerSize,
            allowWrites: options.allowWrites
        )
        let requested = options.durationPerSize
        let points: [LoadPoint]
        do {
            points = try await measurement.run { timing in
                guard timing.duration > requested else { return }
                progress(
                    "  one query takes \(DashboardRenderer.milliseconds(timing.probedLatency.seconds)) alone: "
                        + "each size runs \(DashboardRenderer.fixed(timing.duration.seconds, 1)) s after "
                        + "\(DashboardRenderer.fixed(timing.warmUp.seconds, 1)) s of warm-up"
                )
            } progress: { point in
                progress(
                    "  size \(point.concurrency):\t\(DashboardRenderer.fixed(point.throughput, 0)) queries/s\t"
                        + "p50 \(DashboardRenderer.milliseconds(point.latencyP50))\t"
                        + "p99 \(DashboardRenderer.milliseconds(point.latencyP99))"
                )
            }
        } catch let error as PostgresError where error.sqlState == .readOnlySQLTransaction && !options.allowWrites {
            throw AdviceError(
                description: "the statement writes (\(error.message)); advise runs it thousands of times, so it only "
                    + "measures read-only statements unless --allow-writes is given"
            )
        }
        let advice = try PoolSizeAdvisor.advise(points: points, budget: budget)
        if let reportPath = options.reportPath {
            let svg = AdviceReport.svg(advice, title: "reservoir advise: \(workload.description)")
            do {
                try svg.write(toFile: reportPath, atomically: true, encoding: .utf8)
            } catch {
                throw AdviceError(description: "cannot write the report to \(reportPath): \(error.localizedDescription)")
            }
        }
        return (advice, workload.description)
    }

    /// Fails unless the report can be written at `path`: its directory exists and is writable, and the file, if it
    /// exists, is writable. Checked before measuring, so a bad path does not cost a whole measurement.
    ///
    /// - Parameter path: the report's path.
    /// - Throws: `AdviceError` naming the path.
    static func checkWritable(_ path: String) throws {
        let files = FileManager.default
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard files.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AdviceError(
                description: "cannot write the report to \(path): the directory \(directory) does not exist"
            )
        }
        if files.fileExists(atPath: url.path) {
            guard files.isWritableFile(atPath: url.path) else {
                throw AdviceError(description: "cannot write the report to \(path): the file is not writable")
            }
        } else if !files.isWritableFile(atPath: directory) {
            throw AdviceError(description: "cannot write the report to \(path): the directory is not writable")
        }
    }

    /// The advice as a table of measured and fitted points followed by the reasoning.
    ///
    /// - Parameter advice: the advice.
    /// - Returns: the lines to print.
    public static func table(_ advice: PoolSizeAdvice) -> [String] {
        var lines = ["size  queries/s   fitted/s    p50        p99"]
        for point in advice.points {
            let fitted = advice.fit.model.throughput(at: Double(point.concurrency))
            lines.append(
                pad(String(point.concurrency), 6) + pad(DashboardRenderer.fixed(point.throughput, 0), 12)
                    + pad(DashboardRenderer.fixed(fitted, 0), 12)
                    + pad(DashboardRenderer.milliseconds(point.latencyP50), 11)
                    + DashboardRenderer.milliseconds(point.latencyP99)
            )
        }
        lines.append("")
        lines.append(contentsOf: advice.reasoning)
        return lines
    }

    /// The advice as JSON (sorted keys, durations in seconds).
    ///
    /// - Parameter advice: the advice.
    /// - Returns: the JSON text.
    public static func json(_ advice: PoolSizeAdvice) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(advice), as: UTF8.self)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(1, width - text.count))
    }
}
