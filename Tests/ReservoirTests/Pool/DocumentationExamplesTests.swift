import Logging
import Metrics
import Reservoir
import ReservoirTestKit
import Testing

// The code in docs/pool.md and the DocC guide is copied from this file, so that it compiles and runs.

/// A stand-in for a real connection type in the examples.
final class Connection: Sendable {
    let id: Int
    init(id: Int) { self.id = id }
    func execute(_ sql: String) async throws {}
    func ping() async throws {}
    var isInTransaction: Bool { false }
    func close() async throws {}
    static func connect() async throws -> Connection { Connection(id: 1) }
}

@Suite("Documentation examples")
struct DocumentationExamplesTests {
    @Test("the quick start runs")
    func quickStart() async throws {
        // docs:quick-start
        var configuration = ResourcePoolConfiguration(name: "db")
        configuration.minimumSize = 2
        configuration.maximumSize = 10
        configuration.acquireTimeout = .seconds(5)

        let pool = try ResourcePool(
            configuration: configuration,
            factory: ResourceFactory(
                create: { try await Connection.connect() },
                close: { connection in try await connection.close() }
            ),
            logger: Logger(label: "db.pool")
        )

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }  // run() must be running: it owns every background task

            try await pool.withResource { connection in
                try await connection.execute("SELECT 1")
            }

            pool.triggerGracefulShutdown()  // or let swift-service-lifecycle's ServiceGroup do it
            try await group.waitForAll()
        }
        // docs:end
    }

    @Test("the explicit lease example runs")
    func explicitLease() async throws {
        let mock = MockResourceFactory()
        let pool = try ResourcePool(configuration: ResourcePoolConfiguration(), factory: mock.factory)
        let run = Task { try await pool.run() }
        // docs:lease
        let lease = try await pool.lease(timeout: .seconds(1))
        let resource = lease.resource
        // ... use it; the lease cannot be copied, so it cannot be released twice.
        _ = resource
        await lease.release()  // or: await lease.release(discarding: true) when the resource is broken
        // docs:end
        try await pool.expectNoOutstandingLeases()
        pool.triggerGracefulShutdown()
        try await run.value
    }

    @Test("the hooks example runs")
    func hooks() async throws {
        // docs:hooks
        var configuration = ResourcePoolConfiguration(name: "db")
        configuration.validation = .ifIdle(atLeast: .seconds(1))
        configuration.keepAliveInterval = .seconds(30)
        configuration.leakThreshold = .seconds(60)

        let hooks = ResourcePoolHooks<Connection>(
            afterCreate: { connection in
                try await connection.execute("SET application_name = 'reservoir'")
            },
            beforeLease: { connection, context in
                // Runs when the connection sat idle for a second or more, or after requestIdleValidation().
                do {
                    try await connection.ping()
                    return true
                } catch {
                    return false  // closed and replaced; the caller gets another connection
                }
            },
            afterRelease: { connection, context in
                if context.markedBroken { return .discard }
                if context.error is CancellationError { return .discardAndValidateIdle }
                return connection.isInTransaction ? .discard : .keep
            },
            keepAlive: { connection in try await connection.ping() },
            beforeClose: { connection in try await connection.execute("-- goodbye") }
        )
        let pool = try ResourcePool(
            configuration: configuration,
            factory: ResourceFactory(create: { try await Connection.connect() }, close: { try await $0.close() }),
            hooks: hooks
        )
        // docs:end
        let run = Task { try await pool.run() }
        try await pool.withResource { try await $0.execute("SELECT 1") }
        pool.triggerGracefulShutdown()
        try await run.value
    }

    @Test("the testing example runs")
    func testing() async throws {
        // docs:testing
        let clock = ManualClock()
        let factory = MockResourceFactory(creation: .manual)
        let metrics = RecordingMetricsFactory()
        var configuration = ResourcePoolConfiguration(name: "test")
        configuration.maximumSize = 1
        let pool = try ResourcePool(
            configuration: configuration,
            factory: factory.factory,
            clock: clock,
            jitter: .constant(0.5),
            metricsFactory: metrics
        )
        let run = Task { try await pool.run() }

        let waiter = Task { try await pool.withResource(timeout: .seconds(2)) { $0 } }
        await factory.nextCreation().fail()  // the test decides how each creation ends
        clock.advance(by: .seconds(2))  // fires the timeout: no real sleeping
        await #expect(throws: ResourcePoolError.self) { try await waiter.value }
        #expect(metrics.counter("db.client.connection.timeouts") == 1)
        try await pool.expectNoOutstandingLeases()

        run.cancel()  // forced shutdown
        try await run.value
        // docs:end
    }

    @Test("the statistics example runs")
    func statistics() async throws {
        let pool = try ResourcePool(configuration: ResourcePoolConfiguration(), factory: MockResourceFactory().factory)
        let run = Task { try await pool.run() }
        _ = try await pool.withResource { $0 }
        // docs:stats
        let stats = pool.statistics
        print("leased \(stats.leased)/\(stats.maximumSize), waiting \(stats.waiting)")
        if let age = stats.oldestWaiterAge { print("oldest waiter: \(age)") }
        print("sizing: \(stats.sizing)")  // e.g. "oversized: λ=10.0/s × W=100.0ms → L=1.0 busy; ..."
        // docs:end
        pool.triggerGracefulShutdown()
        try await run.value
    }

    @Test("the leak-sites example of docs/operations.md runs")
    func leakSites() async throws {
        let pool = try ResourcePool(configuration: ResourcePoolConfiguration(), factory: MockResourceFactory().factory)
        let run = Task { try await pool.run() }
        _ = try await pool.lease()  // dropped at once: a leak
        try await pool.waitForStatistics { $0.totals.leaksDropped == 1 }
        // docs:leak-sites
        let statistics = pool.statistics  // PostgresPool: pool.statistics.pool
        for site in statistics.leaksBySite {  // most reports first
            print(site.site, "dropped:", site.dropped, "held too long:", site.heldTooLong)
        }
        // docs:end
        #expect(statistics.leaksBySite.map(\.dropped) == [1])
        #expect(statistics.leaksBySite.first?.site.contains("DocumentationExamplesTests.swift") == true)
        pool.triggerGracefulShutdown()
        try await run.value
    }
}
