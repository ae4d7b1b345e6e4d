import CoreMetrics
import Hummingbird
import Logging
import Prometheus
import Reservoir
import ReservoirBackpressure
import ReservoirPostgres
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The orders service: a Hummingbird HTTP server over a `PostgresPool`, guarded by ``AdmissionControl``, with a
/// background job queue, all run by one swift-service-lifecycle `ServiceGroup`.
///
/// ```swift
/// let service = try OrdersService(configuration: configuration, databaseURL: url, logger: logger)
/// try await service.run()  // until SIGTERM/SIGINT (when given) or triggerGracefulShutdown()
/// ```
///
/// **Order of the group** `[pool, jobs, http, drain]`. The group starts services in that order and shuts them down
/// in reverse, each after the one behind it has returned:
/// 1. `drain` marks the instance as draining (`/ready` answers 503) and waits ``OrdersConfiguration/drainDelay``;
/// 2. the HTTP server stops accepting connections and finishes the requests in flight (which still have the pool);
/// 3. the job consumer writes what is queued;
/// 4. the pool closes its connections.
///
/// Metrics go to ``registry`` (never to a bootstrapped global system), so several instances in one process (tests)
/// keep separate figures.
public final class OrdersService: Sendable {
    /// The configuration the service was created with.
    public let configuration: OrdersConfiguration
    /// The database pool.
    public let pool: PostgresPool
    /// The limiters in front of the database routes.
    public let admission: AdmissionControl
    /// Where every metric of the service goes; `/metrics` serves it.
    public let registry: PrometheusCollectorRegistry
    let readiness: Readiness
    let group: ServiceGroup

    /// Builds the service; nothing runs until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: the settings; validated here.
    ///   - databaseURL: the libpq connection string to use (the configuration's, or a throwaway server's).
    ///   - registry: where metrics go; a new registry by default.
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown (the executable passes SIGTERM, SIGINT).
    ///   - logger: where everything logs.
    ///   - onServerRunning: called with the bound port once the server listens (with port 0 it is the only way to
    ///     learn it).
    /// - Throws: ``OrdersConfigurationError`` for a bad setting; `PostgresError` (`.invalidConfiguration`) for a
    ///   connection string that does not parse (its message never contains the password); `BackpressureError` for a
    ///   limiter setting the library refuses.
    public init(
        configuration: OrdersConfiguration,
        databaseURL: String,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        gracefulShutdownSignals: [UnixSignal] = [],
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws {
        try configuration.validate()
        let metricsFactory = PrometheusMetricsFactory(registry: registry)

        var poolConfiguration = try PostgresPool.Configuration(connectionString: databaseURL, name: "orders")
        poolConfiguration.pool.maximumSize = configuration.poolSize
        poolConfiguration.pool.minimumSize = min(2, configuration.poolSize)
        poolConfiguration.pool.acquireTimeout = configuration.acquireTimeout
        poolConfiguration.pool.leakThreshold = .seconds(30)
        poolConfiguration.pool.drainTimeout = .seconds(10)
        if configuration.admission == .selfSizing {
            poolConfiguration.pool.selfSizing = .throughputSeeking()
            poolConfiguration.pool.maximumWaiters = configuration.effectiveQueueLength
            poolConfiguration.pool.acquireTimeout = configuration.queueTimeout
        }
        let pool = try PostgresPool(
            configuration: poolConfiguration,
            logger: logger,
            metricsFactory: metricsFactory
        )
        let store = OrderStore(pool: pool, simulatedQueryTime: configuration.simulatedQueryTime)
        let admission = try AdmissionControl(
            configuration: configuration,
            metricsFactory: metricsFactory,
            logger: logger
        )
        let jobs = try OrderEventQueue(
            capacity: configuration.jobQueueCapacity,
            store: store,
            metricsFactory: metricsFactory,
            logger: logger
        )
        let readiness = Readiness()
        let routes = OrdersRoutes(
            store: store,
            jobs: jobs,
            admission: admission,
            readiness: readiness,
            registry: registry,
            logger: logger,
            pinsDatabaseWork: configuration.pinsDatabaseWork,
            enablesTestRoutes: configuration.enablesTestRoutes
        )
        var application = Application(
            router: routes.makeRouter(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "reservoir-orders"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
        // The schema exists before the first request is accepted; a database that cannot be reached fails the
        // start here, with the pool's error (circuit breaker open, with the connect error underneath).
        application.beforeServerStarts {
            try await store.migrate()
        }

        self.configuration = configuration
        self.pool = pool
        self.admission = admission
        self.registry = registry
        self.readiness = readiness
        self.group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: pool),
                    .init(service: jobs),
                    .init(service: application),
                    .init(service: DrainSignal(readiness: readiness, delay: configuration.drainDelay, logger: logger)),
                ],
                gracefulShutdownSignals: gracefulShutdownSignals,
                logger: logger
            )
        )
    }

    /// Runs the service until a graceful shutdown completes (or the task is cancelled).
    ///
    /// - Throws: what a service of the group throws: the migration's error when the database cannot be reached, the
    ///   HTTP server's when the port is taken.
    public func run() async throws {
        try await group.run()
    }

    /// Starts a graceful shutdown (see the type's documentation for the order); ``run()`` returns when it is done.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Whether the service has begun draining (`/ready` answers 503).
    public var isDraining: Bool { readiness.isDraining }

    /// Returns once graceful shutdown has begun and `/ready` answers 503; at once if it already has.
    ///
    /// Not cancellable: a caller waits until the service drains. Tests use it to look at a draining service without
    /// polling.
    public func waitUntilDraining() async {
        await readiness.waitUntilDraining()
    }
}

/// The readiness state that `/ready` reports besides the pool's circuit breaker.
final class Readiness: Sendable {
    private struct State {
        var draining = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var isDraining: Bool { state.withLock { $0.draining } }

    func drainStarted() {
        let waiters = state.withLock { state in
            state.draining = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func waitUntilDraining() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let draining = state.withLock { state in
                if !state.draining { state.waiters.append(continuation) }
                return state.draining
            }
            if draining { continuation.resume() }
        }
    }
}

/// Last in the group, so first to hear of graceful shutdown: flips `/ready` to 503, then gives load balancers the
/// configured delay to notice before the HTTP server (next in line) stops accepting.
struct DrainSignal: Service {
    let readiness: Readiness
    let delay: Duration
    let logger: Logger

    func run() async throws {
        try await gracefulShutdown()
        readiness.drainStarted()
        logger.info("Draining: /ready now answers 503", metadata: ["drain.delay": "\(delay)"])
        if delay > .zero {
            try? await Task.sleep(for: delay)
        }
    }
}
