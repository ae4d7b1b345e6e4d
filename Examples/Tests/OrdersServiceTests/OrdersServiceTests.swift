import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import OrdersService
import ReservoirPostgres
import ReservoirPostgresTestKit
import Testing

@Suite("Orders service")
struct OrdersServiceTests {
    @Test("creates, reads and lists orders; bad input is 400, unknown ids 404; jobs are written before shutdown ends")
    func api() async throws {
        try await OrdersServiceHarness.withService({ _ in }) { running in
            let created = try await running.postOrder(#"{"customer":"ada","item":"item-7","quantity":2}"#)
            #expect(created.status == .created)
            let order = try created.decode(Order.self)
            #expect(order.customer == "ada" && order.item == "item-7" && order.quantity == 2)
            #expect(order.totalCents == 1400)  // item-n costs 100·n cents
            #expect(created.headers[.location] == "/orders/\(order.id)")

            let read = try await running.request("/orders/\(order.id)")
            #expect(read.status == .ok)
            #expect(try read.decode(Order.self) == order)

            let second = try await running.postOrder(#"{"customer":"ada","item":"item-1","quantity":5}"#)
            #expect(second.status == .created)
            let list = try await running.request("/orders?customer=ada")
            #expect(list.status == .ok)
            #expect(try list.decode([Order].self).map(\.totalCents) == [500, 1400])  // newest first

            #expect(try await running.request("/orders/999999").status == .notFound)
            #expect(try await running.request("/orders/abc").status == .badRequest)
            #expect(try await running.request("/orders").status == .badRequest)
            #expect(try await running.request("/orders?customer=ada&limit=0").status == .badRequest)
            let badBodies = [
                "not json",
                #"{"customer":"ada","item":"item-1"}"#,
                #"{"customer":"ada","item":"item-1","quantity":0}"#,
                #"{"customer":"","item":"item-1","quantity":1}"#,
            ]
            for body in badBodies {
                let response = try await running.postOrder(body)
                #expect(response.status == .badRequest, "body: \(body)")
                #expect(response.text.contains("\"error\""))
            }
            let unknownItem = try await running.postOrder(#"{"customer":"ada","item":"item-x","quantity":1}"#)
            #expect(unknownItem.status == .unprocessableContent)

            #expect(try await running.request("/health").status == .ok)
            let ready = try await running.request("/ready")
            #expect(ready.status == .ok)
            let readiness = try ready.decode(ReadinessStatus.self)
            #expect(readiness.ready && !readiness.draining && !readiness.circuitBreakerOpen)
            #expect(readiness.maximumConnections == 4)

            let metrics = try await running.request("/metrics")
            #expect(metrics.status == .ok)
            let series = prometheusSeries(metrics.text)
            let pool = "db_client_connection_pool_name=\"orders\""
            #expect(series.value("db_client_connection_max", pool) == 4)
            #expect(series.value("reservoir_pool_circuit_breaker_open", pool) == 0)
            #expect(series.value("db_client_connection_pending_requests", pool) == 0)
            // The migration, two creations, the unknown item and three reads each leased a connection (the job
            // consumer's writes may add more).
            #expect((series.value("db_client_connection_use_time_count", pool) ?? 0) >= 7)
            let open = (series.value("db_client_connection_count", pool, "\"idle\"") ?? -1)
                + (series.value("db_client_connection_count", pool, "\"used\"") ?? -1)
            #expect((1...4).contains(open))
            #expect(series.value("backpressure_limiter_in_flight", "limiter=\"orders\"") != nil)
        } afterShutdown: { database in
            // Graceful shutdown stopped HTTP first, then drained the job queue while the pool was still open.
            let events = try await database.psql("SELECT count(*) FROM order_events")
            let totals = try await database.psql("SELECT orders, spent_cents FROM customer_totals")
            #expect(events == "2")
            #expect(totals == "2|1900")
        }
    }

    @Test("a burst past the concurrency limit is shed at once with 503 and Retry-After, not queued into timeouts")
    func burstIsShed() async throws {
        try await OrdersServiceHarness.withService { configuration in
            configuration.admission = .fixed
            configuration.concurrencyLimit = 2
            configuration.queueLength = 0
            configuration.enablesTestRoutes = true
        } _: { running in
            // The test holds an advisory lock; each admitted request waits for it inside a transaction, holding its
            // permit and a connection, so exactly two are in flight whatever the timing.
            let lock = try await PostgresConnection.connect(
                configuration: .init(connectionString: running.database.connectionString)
            )
            do {
                try await burst(on: running, lock: lock)
                await lock.close()
            } catch {
                await lock.close()
                throw error
            }
        }
    }

    /// The body of ``burstIsShed()``: eight requests against two permits while `lock` holds the advisory lock.
    func burst(on running: OrdersServiceHarness.Running, lock: PostgresConnection) async throws {
        try await lock.execute("SELECT pg_advisory_lock(4242)")
        let burst = 8
        typealias Result = (status: HTTPResponse.Status, retryAfter: String?)
        let (results, continuation) = AsyncStream.makeStream(of: Result.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<burst {
                group.addTask {
                    let response = try await running.request("/debug/hold/4242")
                    continuation.yield((response.status, response.headers[.retryAfter]))
                }
            }
            var iterator = results.makeAsyncIterator()
            // Six answers arrive while the lock is held: the two admitted requests cannot finish before it is
            // released, so these can only be refusals, and they must come at once (no queue, no timeout).
            for _ in 0..<(burst - 2) {
                let result = try #require(await iterator.next())
                #expect(result.status == .serviceUnavailable)
                #expect(result.retryAfter == "1")
            }
            try await lock.execute("SELECT pg_advisory_unlock(4242)")
            for _ in 0..<2 {
                let result = try #require(await iterator.next())
                #expect(result.status == .ok)
            }
            try await group.waitForAll()
        }
        let series = prometheusSeries(try await running.request("/metrics").text)
        #expect(series.value("orders_shed_total") == Double(burst - 2))
        #expect(series.value("backpressure_limiter_rejected", "limiter=\"orders\"") == Double(burst - 2))
    }

    @Test("a client past its rate gets 429 with Retry-After; other clients and /health are not limited")
    func clientRateLimit() async throws {
        try await OrdersServiceHarness.withService { configuration in
            configuration.clientRate = 0.01  // one request per 100 s: no refill during the test
            configuration.clientBurst = 3
        } _: { running in
            let greedy: HTTPFields = [HTTPField.Name("X-Client-ID")!: "greedy"]
            for _ in 0..<3 {
                #expect(try await running.request("/orders?customer=ada", headers: greedy).status == .ok)
            }
            let refused = try await running.request("/orders?customer=ada", headers: greedy)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] == "100")

            let polite: HTTPFields = [HTTPField.Name("X-Client-ID")!: "polite"]
            #expect(try await running.request("/orders?customer=ada", headers: polite).status == .ok)
            #expect(try await running.request("/health", headers: greedy).status == .ok)
            let series = prometheusSeries(try await running.request("/metrics").text)
            #expect(series.value("orders_rate_limited_total") == 1)
        }
    }

    @Test("every admission mode serves orders and reports its pool", arguments: [
        AdmissionMode.adaptive, .selfSizing, .unbounded,
    ])
    func admissionModes(mode: AdmissionMode) async throws {
        try await OrdersServiceHarness.withService { configuration in
            configuration.admission = mode
        } _: { running in
            let created = try await running.postOrder(#"{"customer":"grace","item":"item-3","quantity":1}"#)
            #expect(created.status == .created)
            let readiness = try await running.request("/ready").decode(ReadinessStatus.self)
            #expect(readiness.ready)
            // Self-sizing starts at the pool's minimum (2) and moves within 1...4; the others stay at 4.
            #expect((1...4).contains(readiness.maximumConnections))
            let series = prometheusSeries(try await running.request("/metrics").text)
            let limiter = series.value("backpressure_limiter_in_flight", "limiter=\"orders\"")
            #expect((limiter != nil) == (mode == .adaptive))
        }
    }

    @Test("with pinsDatabaseWork a request continues on the PostgreSQL I/O thread after its statements; without, it does not", arguments: [true, false])
    func pinnedDatabaseWork(pinned: Bool) async throws {
        try await OrdersServiceHarness.withService { configuration in
            configuration.pinsDatabaseWork = pinned
            configuration.enablesTestRoutes = true
        } _: { running in
            let created = try await running.postOrder(#"{"customer":"lin","item":"item-2","quantity":1}"#)
            #expect(created.status == .created)
            let thread = try await running.request("/debug/thread").decode([String: String].self)["thread"]
            #expect((thread == "reservoir-pg-io") == pinned, "thread: \(thread ?? "none")")
        }
    }

    @Test("once graceful shutdown begins, /ready answers 503 while the server still serves")
    func readyWhileDraining() async throws {
        try await OrdersServiceHarness.withService(
            { $0.drainDelay = .seconds(60) },  // ended by cancellation, never waited out
            endsByCancellation: true
        ) { running in
            #expect(try await running.request("/ready").status == .ok)

            await running.service.triggerGracefulShutdown()
            await running.service.waitUntilDraining()
            let ready = try await running.request("/ready")
            #expect(ready.status == .serviceUnavailable)
            let status = try ready.decode(ReadinessStatus.self)
            #expect(!status.ready && status.draining && !status.circuitBreakerOpen)
            #expect(try await running.request("/health").status == .ok)
        }
    }

    @Test("an unreachable database fails the start with the pool's error, without the password")
    func unreachableDatabase() async throws {
        let service = try OrdersService(
            configuration: {
                var configuration = OrdersConfiguration()
                configuration.port = 0
                return configuration
            }(),
            // Port 1 on loopback refuses at once; the circuit breaker opens after a few quick attempts.
            databaseURL: "postgresql://orders:s3cret-password@127.0.0.1:1/orders?connect_timeout=2",
            logger: .init(label: "orders-test")
        )
        let error = await #expect(throws: (any Error).self) { try await service.run() }
        let text = "\(String(describing: error)) \(error?.localizedDescription ?? "")"
        #expect(!text.contains("s3cret-password"))
        #expect(text.contains("circuit") || text.contains("connect"), "\(text)")
    }
}

@Suite("Orders service configuration")
struct OrdersConfigurationTests {
    @Test("reads every variable from the environment")
    func environment() throws {
        let configuration = try OrdersConfiguration(environment: [
            "DATABASE_URL": "postgresql://app:hunter2@db/app",
            "ORDERS_PORT": "9000",
            "ORDERS_POOL_SIZE": "12",
            "ORDERS_ADMISSION": "adaptive",
            "ORDERS_CONCURRENCY_LIMIT": "6",
            "ORDERS_QUEUE_LENGTH": "3",
            "ORDERS_QUEUE_TIMEOUT_MS": "250",
            "ORDERS_CLIENT_RATE": "5",
            "ORDERS_SIMULATED_QUERY_MS": "20",
            "ORDERS_TEST_ROUTES": "1",
            "ORDERS_PIN_DATABASE_WORK": "1",
        ])
        #expect(configuration.databaseURL == "postgresql://app:hunter2@db/app")
        #expect(configuration.port == 9000 && configuration.poolSize == 12)
        #expect(configuration.admission == .adaptive)
        #expect(configuration.effectiveConcurrencyLimit == 6 && configuration.effectiveQueueLength == 3)
        #expect(configuration.queueTimeout == .milliseconds(250))
        #expect(configuration.clientRate == 5 && configuration.effectiveClientBurst == 10)
        #expect(configuration.simulatedQueryTime == .milliseconds(20))
        #expect(configuration.enablesTestRoutes)
        #expect(configuration.pinsDatabaseWork)
        #expect(!OrdersConfiguration().pinsDatabaseWork)
        #expect(!configuration.description.contains("hunter2"))
        #expect(try OrdersConfiguration(environment: [:]).databaseURL == nil)
        #expect(
            try OrdersConfiguration(environment: ["RESERVOIR_DATABASE_URL": "a", "DATABASE_URL": "b"]).databaseURL
                == "a"
        )
    }

    @Test("a bad value names its variable", arguments: [
        ("ORDERS_PORT", "eighty"),
        ("ORDERS_PORT", "70000"),
        ("ORDERS_POOL_SIZE", "0"),
        ("ORDERS_ADMISSION", "maybe"),
        ("ORDERS_CLIENT_RATE", "-1"),
        ("ORDERS_QUEUE_TIMEOUT_MS", "0"),
        ("ORDERS_TEST_ROUTES", "perhaps"),
        ("ORDERS_PIN_DATABASE_WORK", "2"),
    ])
    func badValue(variable: String, value: String) {
        #expect {
            try OrdersConfiguration(environment: [variable: value])
        } throws: { error in
            (error as? OrdersConfigurationError)?.variable == variable
        }
    }

    @Test("a connection string that does not parse is an invalid configuration, without the password")
    func badConnectionString() {
        #expect {
            try OrdersService(
                configuration: OrdersConfiguration(),
                databaseURL: "postgresql://app:hunter2@db:notaport/app",
                logger: .init(label: "orders-test")
            )
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .invalidConfiguration && !"\(error)".contains("hunter2")
        }
    }
}
