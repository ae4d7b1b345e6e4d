import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import PrometheusExample
import Reservoir
import Testing

@Suite("Prometheus example")
struct MetricsEndpointTests {
    /// Parses Prometheus' text format into `series → value` (comments skipped).
    static func parse(_ text: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            values[String(line[..<space])] = value
        }
        return values
    }

    @Test("GET /metrics over HTTP serves the pool's series with the values the load produced")
    func scrape() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let logger = Logger(label: "test")
        let pool = try makeExamplePool(name: "scraped", maximumSize: 3, factory: factory, logger: logger)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            let completed = await runExampleLoad(pool: pool, concurrency: 6, operations: 50)
            #expect(completed == 300)

            let app = makeMetricsServer(registry: registry, port: 0, logger: logger)
            try await app.test(.live) { client in
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                    let series = Self.parse(String(buffer: response.body))
                    let pool = "db_client_connection_pool_name=\"scraped\""

                    // Every lease was timed: the use-time histogram counted all 300.
                    let useCount = series.first { $0.key.hasPrefix("db_client_connection_use_time_count{") && $0.key.contains(pool) }
                    #expect(useCount?.value == 300)
                    let waitCount = series.first { $0.key.hasPrefix("db_client_connection_wait_time_count{") && $0.key.contains(pool) }
                    #expect(waitCount?.value == 300)

                    // Connections by state: none leased now, between 1 and 3 idle, never above the maximum.
                    let idle = series.first { $0.key.hasPrefix("db_client_connection_count{") && $0.key.contains("\"idle\"") && $0.key.contains(pool) }
                    let used = series.first { $0.key.hasPrefix("db_client_connection_count{") && $0.key.contains("\"used\"") && $0.key.contains(pool) }
                    #expect(used?.value == 0)
                    #expect((1...3).contains(idle?.value ?? -1))
                    let maximum = series.first { $0.key.hasPrefix("db_client_connection_max{") && $0.key.contains(pool) }
                    #expect(maximum?.value == 3)
                    let pending = series.first { $0.key.hasPrefix("db_client_connection_pending_requests{") && $0.key.contains(pool) }
                    #expect(pending?.value == 0)
                }
                try await client.execute(uri: "/nothing", method: .get) { response in
                    #expect(response.status == .notFound)
                }
            }
            pool.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}
