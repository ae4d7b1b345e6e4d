// Runs a ResourcePool under load and serves its metrics for Prometheus at http://127.0.0.1:9090/metrics.
//
//     swift run --package-path Examples prometheus-example [port]
//
// Stop it with Ctrl-C: the ServiceGroup shuts the server, the load and the pool down gracefully.
import Logging
import Metrics
import Prometheus
import PrometheusExample
import Reservoir
import ServiceLifecycle
import UnixSignals

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 9090
let logger = Logger(label: "prometheus-example")
let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

let pool = try makeExamplePool(factory: MetricsSystem.factory, logger: logger)
let server = makeMetricsServer(registry: registry, port: port, logger: logger) { port in
    logger.info("serving metrics", metadata: ["url": "http://127.0.0.1:\(port)/metrics"])
}

/// The load, as a service so that the group cancels it on shutdown.
struct LoadService: Service {
    let pool: ResourcePool<ExampleConnection, ContinuousClock>

    func run() async throws {
        _ = await cancelWhenGracefulShutdown {
            await runExampleLoad(pool: pool, concurrency: 8, operations: nil, hold: .milliseconds(5))
        }
    }
}

let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
        services: [
            .init(service: pool),
            .init(service: server),
            .init(service: LoadService(pool: pool), successTerminationBehavior: .gracefullyShutdownGroup),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
)
try await group.run()
