import Synchronization
import Hummingbird
import Logging
import Metrics
import Prometheus
import Reservoir
import ServiceLifecycle

/// A stand-in for a database connection: what the example pool hands out.
public struct ExampleConnection: Sendable, Hashable {
    /// A unique number per connection.
    public var id: Int
}

/// Builds a pool of `ExampleConnection`s whose metrics go to `factory`.
///
/// - Parameters:
///   - name: the pool's name, the `db_client_connection_pool_name` label of every series.
///   - maximumSize: the pool's maximum size.
///   - factory: the metrics factory, e.g. a `PrometheusMetricsFactory`.
///   - logger: where the pool logs.
/// - Returns: the pool; run it with `run()` or in a `ServiceGroup`.
/// - Throws: `ResourcePoolError` for an invalid configuration.
public func makeExamplePool(
    name: String = "example",
    maximumSize: Int = 4,
    factory: any MetricsFactory,
    logger: Logger
) throws -> ResourcePool<ExampleConnection, ContinuousClock> {
    var configuration = ResourcePoolConfiguration(name: name)
    configuration.minimumSize = 1
    configuration.maximumSize = maximumSize
    configuration.acquireTimeout = .seconds(5)
    configuration.leakThreshold = .seconds(10)
    let counter = ConnectionCounter()
    return try ResourcePool(
        configuration: configuration,
        factory: ResourceFactory(
            create: { ExampleConnection(id: counter.next()) },
            close: { _ in }
        ),
        logger: logger,
        metricsFactory: factory
    )
}

/// Serves the registry's metrics in Prometheus' text format at `GET /metrics`.
///
/// - Parameters:
///   - registry: the registry the pool's metrics factory writes to.
///   - host: the address to bind; loopback by default.
///   - port: the port; 0 picks a free one.
///   - logger: the server's logger.
///   - onServerRunning: called with the bound port once the server listens.
/// - Returns: a Hummingbird application, itself a `Service`.
public func makeMetricsServer(
    registry: PrometheusCollectorRegistry,
    host: String = "127.0.0.1",
    port: Int = 9090,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router()
    router.get("/metrics") { _, _ -> Response in
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
        )
    }
    return Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "reservoir-example"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
        logger: logger
    )
}

/// A load that keeps the pool busy: `concurrency` tasks, each running `operations` leases, holding each across a
/// suspension point like a query would.
///
/// - Parameters:
///   - pool: the pool to use.
///   - concurrency: how many tasks lease at once.
///   - operations: leases per task; `nil` runs until the task is cancelled.
///   - hold: how long each lease is held, simulating a query; `.zero` holds across one `Task.yield()` only.
/// - Returns: the number of leases completed.
@discardableResult
public func runExampleLoad(
    pool: ResourcePool<ExampleConnection, ContinuousClock>,
    concurrency: Int,
    operations: Int?,
    hold: Duration = .zero
) async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var completed = 0
                while !Task.isCancelled, operations.map({ completed < $0 }) ?? true {
                    do {
                        try await pool.withResource { _ in
                            if hold > .zero {
                                try await Task.sleep(for: hold)
                            } else {
                                await Task.yield()
                            }
                        }
                        completed += 1
                    } catch {
                        if Task.isCancelled { break }
                    }
                }
                return completed
            }
        }
        return await group.reduce(0, +)
    }
}

/// Hands out increasing connection ids.
final class ConnectionCounter: Sendable {
    private let value = Mutex(0)

    func next() -> Int {
        value.withLock { value in
            value += 1
            return value
        }
    }
}
