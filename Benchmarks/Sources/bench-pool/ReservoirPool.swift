#if canImport(Reservoir)
import Logging
import Reservoir

/// The metrics backend every all-features pool of the run reports to.
let benchMetricsFactory = BenchMetricsFactory()

/// Builds one of our pools over `resources` in-memory resources, all kept warm (`minimumSize` = `maximumSize`).
///
/// With `allFeatures`, every feature that costs something per cycle is on: metrics through a backend that does real
/// work (`BenchMetricsFactory`), leak tracking (`leakThreshold`), a validation policy with its before-lease hook
/// (validate when idle for 100 ms or more), a keep-alive hook, a bound on waiters, and maximum lifetime with jitter.
/// Without it, the configuration's defaults, no hooks and the no-op metrics backend.
func makeReservoirPool(
    resources: Int,
    allFeatures: Bool,
    name: String
) throws -> ResourcePool<BenchResource, ContinuousClock> {
    var configuration = ResourcePoolConfiguration(name: name)
    configuration.minimumSize = resources
    configuration.maximumSize = resources
    let factory = ResourceFactory<BenchResource>(
        create: { BenchResource(id: nextResourceID.take()) },
        close: { $0.close() }
    )
    guard allFeatures else {
        return try ResourcePool(configuration: configuration, factory: factory)
    }
    configuration.leakThreshold = .seconds(10)
    configuration.validation = .ifIdle(atLeast: .milliseconds(100))
    configuration.keepAliveInterval = .seconds(30)
    configuration.maximumWaiters = 100_000
    configuration.maximumLifetime = .seconds(1800)
    configuration.maximumLifetimeJitter = 0.1
    let hooks = ResourcePoolHooks<BenchResource>(
        beforeLease: { resource, _ in !resource.isClosed },
        keepAlive: { resource in
            if resource.isClosed { throw BenchResourceClosed() }
        }
    )
    return try ResourcePool(
        configuration: configuration,
        factory: factory,
        hooks: hooks,
        logger: Logger(label: "bench.pool"),
        metricsFactory: benchMetricsFactory
    )
}

struct BenchResourceClosed: Error {}

/// Resource ids for our pools (postgres-nio's factory is handed its ids; the floor numbers its own).
let nextResourceID = TicketDispenser()

/// Our pool driven through `withResource`, the everyday API.
final class ReservoirBenchPool: BenchPool {
    let pool: ResourcePool<BenchResource, ContinuousClock>
    private let runTask: Task<Void, any Error>

    init(resources: Int, allFeatures: Bool) throws {
        let pool = try makeReservoirPool(
            resources: resources,
            allFeatures: allFeatures,
            name: allFeatures ? "bench-all" : "bench-defaults"
        )
        self.pool = pool
        self.runTask = Task { try await pool.run() }
    }

    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        try await self.pool.withResource(body)
    }

    func shutdown() async {
        self.pool.triggerGracefulShutdown()
        _ = try? await self.runTask.value
    }
}

/// Our all-features pool driven through the explicit `~Copyable` lease.
final class ReservoirLeaseBenchPool: BenchPool {
    let pool: ResourcePool<BenchResource, ContinuousClock>
    private let runTask: Task<Void, any Error>

    init(resources: Int) throws {
        let pool = try makeReservoirPool(resources: resources, allFeatures: true, name: "bench-all-lease")
        self.pool = pool
        self.runTask = Task { try await pool.run() }
    }

    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        let lease = try await self.pool.lease()
        let value: T
        do {
            value = try await body(lease.resource)
        } catch {
            await lease.release()
            throw error
        }
        await lease.release()
        return value
    }

    func shutdown() async {
        self.pool.triggerGracefulShutdown()
        _ = try? await self.runTask.value
    }
}
#endif
