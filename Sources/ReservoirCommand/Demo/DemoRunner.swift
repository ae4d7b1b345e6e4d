import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir

/// Runs `reservoir demo`: a mixed workload through a `PostgresPool`, a live view of the pool, and a summary.
public struct DemoRunner: Sendable {
    /// What to run and for how long.
    public struct Options: Sendable {
        /// The database to use; `nil` starts a throwaway server for the run.
        public var connectionString: String?
        /// Whether the workload may create a table and write (always true on a throwaway server).
        public var allowWrites = false
        /// How long the workload runs.
        public var duration: Duration = .seconds(20)
        /// The pool's maximum size.
        public var poolSize = 8
        /// Concurrent clients of the pool.
        public var clients = 24
        /// How often the view refreshes.
        public var refreshInterval: Duration = .milliseconds(250)
        /// The database's knee from `reservoir advise`, for the sizing line; `nil` when unknown.
        public var throughputKnee: Int?
        /// Whether the pool sizes itself (``ResourcePool/SelfSizingPolicy``) up to `poolSize`.
        public var selfSizing = false

        /// Options with the defaults: a throwaway server, 20 seconds, 8 connections, 24 clients.
        public init() {}
    }

    /// What the run measured and caught.
    public struct Summary: Sendable {
        /// Operations completed.
        public var completed: Int
        /// Operations that failed.
        public var failed: Int
        /// Completed operations per second over the run.
        public var throughput: Double
        /// Acquire wait, median and 99th percentile, in seconds.
        public var acquireWait: (p50: Double, p99: Double)
        /// Hold time, median and 99th percentile, in seconds.
        public var holdTime: (p50: Double, p99: Double)
        /// Leases dropped without release, by acquire site.
        public var leaks: [DashboardSnapshot.SiteCount]
        /// Leases held past the leak threshold, by acquire site.
        public var longHolds: [DashboardSnapshot.SiteCount]
        /// Connections returned inside a transaction, by acquire site.
        public var dirtyReturns: [DashboardSnapshot.SiteCount]
        /// The pool's sizing advice at the end.
        public var sizing: String
    }

    /// The options of this run.
    public var options: Options

    /// Creates a runner.
    ///
    /// - Parameter options: what to run.
    public init(options: Options) {
        self.options = options
    }

    /// Runs the demo to the end, writing the live view and the summary to `output`.
    ///
    /// - Parameter output: where the view goes; plain lines once a second when it is not a terminal.
    /// - Returns: the summary.
    /// - Throws: `PostgresTestServerError` when the throwaway server cannot start, `PostgresError` when the database
    ///   cannot be reached or set up.
    public func run(output: some DemoOutput) async throws -> Summary {
        if let connectionString = options.connectionString {
            let configuration = try PostgresConnection.Configuration(connectionString: connectionString)
            return try await run(configuration: configuration, allowWrites: options.allowWrites, output: output)
        }
        output.write("starting a throwaway PostgreSQL server…\n")
        return try await PostgresTestServer.withServer { server in
            let configuration = try PostgresConnection.Configuration(
                connectionString: server.connection.unixSocketConnectionString
            )
            return try await run(configuration: configuration, allowWrites: true, output: output)
        }
    }

    func run(
        configuration connection: PostgresConnection.Configuration,
        allowWrites: Bool,
        output: some DemoOutput
    ) async throws -> Summary {
        var configuration = PostgresPool.Configuration(connection: connection, name: "reservoir-demo")
        configuration.pool.minimumSize = 2
        configuration.pool.maximumSize = options.poolSize
        configuration.pool.acquireTimeout = .seconds(5)
        configuration.pool.leakThreshold = .milliseconds(1_000)
        configuration.pool.statisticsWindow = .seconds(5)
        configuration.pool.throughputKnee = options.throughputKnee
        if options.selfSizing { configuration.pool.selfSizing = .throughputSeeking() }
        // The pool's own log lines would tear the live view; what they report (leaks and dirty returns with their
        // sites) comes from its statistics instead.
        let pool = try PostgresPool(
            configuration: configuration,
            logger: Logger(label: "reservoir.demo") { _ in SwiftLogNoOpLogHandler() }
        )
        let figures = DemoFigures()
        let workload = DemoWorkload(pool: pool, allowWrites: allowWrites, accounts: 10_000, figures: figures)
        let clock = ContinuousClock()

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            defer { pool.triggerGracefulShutdown() }
            try await workload.prepare()
            output.write(
                "running a mixed workload for \(DashboardRenderer.fixed(options.duration.seconds, 0)) s: "
                    + "\(options.clients) clients, pool of \(options.poolSize)"
                    + (options.selfSizing ? " (self-sizing)" : "")
                    + (allowWrites ? "" : " (read-only: pass --allow-writes for transfers)") + "\n"
            )
            let start = clock.now
            let end = start + options.duration

            let workers = Task {
                await withTaskGroup(of: Void.self) { workers in
                    for client in 0..<options.clients {
                        workers.addTask {
                            var random = SystemRandomNumberGenerator()
                            while clock.now < end, !Task.isCancelled {
                                _ = try? await workload.operation(roll: Int.random(in: 0..<100), random: &random)
                                // Think time between a client's requests: 0–6 ms.
                                try? await Task.sleep(for: .microseconds(Int.random(in: 0...6_000)))
                            }
                            _ = client
                        }
                    }
                    // The planted faults, at fixed points of the run.
                    workers.addTask {
                        try? await clock.sleep(until: start + options.duration * 0.25)
                        figures.recordPlanted("a leaked lease", at: clock.now)
                        try? await workload.plantLeak()
                        try? await clock.sleep(until: start + options.duration * 0.45)
                        try? await workload.plantDirtyReturn()
                        try? await clock.sleep(until: start + options.duration * 0.6)
                        figures.recordPlanted("a 1.5 s hold", at: clock.now)
                        try? await workload.plantLongHold(.milliseconds(1_500))
                    }
                }
            }

            var lastCompleted = 0
            var lastTick = start
            var nextRotation = start + .seconds(1)
            var nextPlainLine = start + .seconds(1)
            while clock.now < end {
                try? await clock.sleep(for: options.refreshInterval)
                let now = clock.now
                if now >= nextRotation {
                    figures.rotate()
                    nextRotation = now + .seconds(1)
                }
                let recent = figures.recent()
                let interval = (now - lastTick).seconds
                let throughput = interval > 0 ? Double(recent.completed - lastCompleted) / interval : 0
                lastCompleted = recent.completed
                lastTick = now
                var snapshot = await self.snapshot(pool: pool, figures: figures, recent: recent, now: now)
                snapshot.elapsed = now - start
                snapshot.duration = options.duration
                snapshot.throughput = throughput
                if output.isTerminal {
                    output.write(DashboardRenderer.frame(snapshot, width: output.width))
                } else if now >= nextPlainLine {
                    output.write(DashboardRenderer.plainLine(snapshot) + "\n")
                    nextPlainLine = now + .seconds(1)
                }
            }
            await workers.value
            let elapsed = clock.now - start

            let totals = figures.totals()
            let final = await self.snapshot(pool: pool, figures: figures, recent: totals, now: clock.now)
            let summary = Summary(
                completed: totals.completed,
                failed: totals.failed,
                throughput: Double(totals.completed) / max(elapsed.seconds, 0.001),
                acquireWait: (totals.wait.quantileSeconds(0.5), totals.wait.quantileSeconds(0.99)),
                holdTime: (totals.hold.quantileSeconds(0.5), totals.hold.quantileSeconds(0.99)),
                leaks: final.leaks,
                longHolds: final.longHolds,
                dirtyReturns: final.dirtyReturns,
                sizing: final.sizing
            )
            await workload.cleanUp()
            output.write(Self.render(summary))
            return summary
        }
    }

    func snapshot(
        pool: PostgresPool,
        figures: DemoFigures,
        recent: (wait: LatencyHistogram, hold: LatencyHistogram, completed: Int, failed: Int),
        now: ContinuousClock.Instant
    ) async -> DashboardSnapshot {
        let statistics = pool.statistics.pool
        let postgres = pool.statistics
        var snapshot = DashboardSnapshot()
        snapshot.poolName = pool.configuration.pool.name
        snapshot.idle = statistics.idle
        snapshot.leased = statistics.leased
        snapshot.creating = statistics.creating
        snapshot.maximumSize = statistics.maximumSize
        snapshot.effectiveMaximumSize = statistics.effectiveMaximumSize
        snapshot.waiters = statistics.waiting
        snapshot.acquireWaitP50 = recent.wait.quantileSeconds(0.5)
        snapshot.acquireWaitP99 = recent.wait.quantileSeconds(0.99)
        snapshot.holdTimeP50 = recent.hold.quantileSeconds(0.5)
        snapshot.holdTimeP99 = recent.hold.quantileSeconds(0.99)
        snapshot.completed = recent.completed
        snapshot.failed = recent.failed
        snapshot.leaks = Self.sorted(statistics.leaksBySite.map { ($0.site, $0.dropped) })
        snapshot.longHolds = Self.sorted(statistics.leaksBySite.map { ($0.site, $0.heldTooLong) })
        snapshot.dirtyReturns = Self.sorted(postgres.dirtyReturnsBySite.map { ($0.key, $0.value) })
        // The pool's statistics window is 5 to 10 s long: name the planted faults it still holds, whose waits no
        // pool size would cure.
        let planted = figures.planted(since: now - .seconds(10))
        snapshot.sizing = Self.sizingLine(statistics.sizing, planted: planted)
        return snapshot
    }

    /// The pool's sizing verdict, with the planted faults in its window named.
    static func sizingLine(_ sizing: SizingAdvice, planted: [String]) -> String {
        guard !planted.isEmpty else { return "\(sizing)" }
        let faults = planted.joined(separator: ", ")
        return "\(sizing) [the window includes faults the demo planted (\(faults)): waits they cause are a fault to "
            + "fix, not a size to change]"
    }

    /// The sites with a count above zero, most first.
    static func sorted(_ counts: some Sequence<(String, Int)>) -> [DashboardSnapshot.SiteCount] {
        counts.filter { $0.1 > 0 }.map { DashboardSnapshot.SiteCount(site: $0.0, count: $0.1) }
            .sorted { ($0.count, $1.site) > ($1.count, $0.site) }
    }

    /// The summary as printed at the end of the run.
    static func render(_ summary: Summary) -> String {
        func sites(_ title: String, _ sites: [DashboardSnapshot.SiteCount]) -> String {
            let total = sites.reduce(0) { $0 + $1.count }
            var text = "\(title): \(total)\n"
            for site in sites { text += "    \(site.count)× at \(site.site)\n" }
            return text
        }
        return "\nsummary\n"
            + "  completed \(summary.completed) operations, \(summary.failed) failed, "
            + "\(DashboardRenderer.fixed(summary.throughput, 0)) ops/s\n"
            + "  acquire wait p50 \(DashboardRenderer.milliseconds(summary.acquireWait.p50)), "
            + "p99 \(DashboardRenderer.milliseconds(summary.acquireWait.p99))\n"
            + "  hold time    p50 \(DashboardRenderer.milliseconds(summary.holdTime.p50)), "
            + "p99 \(DashboardRenderer.milliseconds(summary.holdTime.p99))\n"
            + "  " + sites("leaks (dropped without release)", summary.leaks)
            + "  " + sites("held past the leak threshold", summary.longHolds)
            + "  " + sites("dirty returns (inside a transaction)", summary.dirtyReturns)
            + "  sizing: \(summary.sizing)\n"
    }
}
