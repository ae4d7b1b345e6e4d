import CoreMetrics
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Reservoir
import ReservoirPostgres

/// The HTTP routes of the orders service.
///
/// | route | what it does |
/// |---|---|
/// | `POST /orders` | creates an order (JSON `{"customer", "item", "quantity"}`) in a transaction: 201 with the order |
/// | `GET /orders/:id` | one order, or 404 |
/// | `GET /orders?customer=…&limit=…` | a customer's newest orders (limit 1…100, default 20) |
/// | `GET /customers/:name` | the running totals the background jobs keep, or 404 |
/// | `GET /health` | liveness: 200 while the process serves HTTP |
/// | `GET /ready` | readiness: 503 while the pool's circuit breaker is open or the service drains |
/// | `GET /metrics` | Prometheus text format: pool, limiter, channel and service series |
///
/// The database routes sit behind ``AdmissionMiddleware``: 429 past a client's rate, 503 with `Retry-After` when
/// the service sheds.
struct OrdersRoutes: Sendable {
    let store: OrderStore
    let jobs: OrderEventQueue
    let admission: AdmissionControl
    let readiness: Readiness
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let pinsDatabaseWork: Bool
    let enablesTestRoutes: Bool

    func makeRouter() -> Router<OrdersRequestContext> {
        let router = Router(context: OrdersRequestContext.self)
        router.get("/health") { _, _ in APIResponse.json(["status": "ok"]) }
        router.get("/ready") { _, _ in readinessResponse() }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }

        let guarded = AdmissionMiddleware<OrdersRequestContext>(admission: admission)
        let orders = router.group("orders").add(middleware: guarded)
        orders.post { request, _ in await databaseCall { try await createOrder(request) } }
        orders.get { request, _ in await databaseCall { try await listOrders(request) } }
        orders.get(":id") { _, context in
            guard let raw = context.parameters.get("id"), let id = Int64(raw), id > 0 else {
                return APIResponse.error(.badRequest, "the order id must be a positive whole number")
            }
            return await databaseCall {
                guard let order = try await store.order(id: id) else {
                    return APIResponse.error(.notFound, "no order \(id)")
                }
                return APIResponse.json(order)
            }
        }
        router.group("customers").add(middleware: guarded).get(":name") { _, context in
            guard let name = context.parameters.get("name"), !name.isEmpty, name.count <= 64 else {
                return APIResponse.error(.badRequest, "the customer name must be 1 to 64 characters")
            }
            return await databaseCall {
                guard let totals = try await store.totals(customer: name) else {
                    return APIResponse.error(.notFound, "no recorded orders for this customer")
                }
                return APIResponse.json(
                    CustomerTotals(customer: name, orders: totals.orders, spentCents: totals.spentCents)
                )
            }
        }
        if enablesTestRoutes {
            // The name of the thread a request continues on after a statement (tests check the pinning with it).
            router.group("debug").get("thread") { _, _ in
                await databaseCall {
                    _ = try await store.pool.query("SELECT 1")
                    let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
                    return APIResponse.json(["thread": name.trimmingCharacters(in: .whitespacesAndNewlines)])
                }
            }
            router.group("debug").add(middleware: guarded).get("hold/:key") { _, context in
                guard let raw = context.parameters.get("key"), let key = Int64(raw) else {
                    return APIResponse.error(.badRequest, "the key must be a whole number")
                }
                return await databaseCall {
                    try await store.holdUntilUnlocked(key: key)
                    return APIResponse.json(["held": key])
                }
            }
        }
        return router
    }

    func createOrder(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 16 * 1024)
        } catch {
            return APIResponse.error(.contentTooLarge, "the body must be at most 16 KiB")
        }
        let newOrder: NewOrder
        do {
            newOrder = try JSONDecoder().decode(NewOrder.self, from: Data(body.readableBytesView))
        } catch {
            return APIResponse.error(
                .badRequest,
                "expected JSON {\"customer\": string, \"item\": string, \"quantity\": 1...1000}"
            )
        }
        if let problem = newOrder.problem {
            return APIResponse.error(.badRequest, problem)
        }
        let order: Order
        do {
            order = try await store.create(newOrder)
        } catch OrderRejection.unknownItem {
            return APIResponse.error(.unprocessableContent, "unknown item \(newOrder.item)")
        } catch OrderRejection.outOfStock {
            return APIResponse.error(.conflict, "not enough stock of \(newOrder.item)")
        }
        jobs.enqueue(OrderCreated(orderID: order.id, customer: order.customer, totalCents: order.totalCents))
        var response = APIResponse.json(order, status: .created)
        response.headers[.location] = "/orders/\(order.id)"
        return response
    }

    func listOrders(_ request: Request) async throws -> Response {
        guard let customer = request.uri.queryParameters.get("customer"), !customer.isEmpty, customer.count <= 64
        else {
            return APIResponse.error(.badRequest, "give ?customer= (1 to 64 characters)")
        }
        var limit = 20
        if let raw = request.uri.queryParameters.get("limit") {
            guard let parsed = Int(raw), (1...100).contains(parsed) else {
                return APIResponse.error(.badRequest, "limit must be between 1 and 100")
            }
            limit = parsed
        }
        return APIResponse.json(try await store.orders(customer: customer, limit: limit))
    }

    /// Runs a database route and turns the pool's and the driver's errors into HTTP answers: overload is 503 with
    /// `Retry-After`, anything unexpected 500 (logged; the client gets no details).
    func databaseCall(_ body: () async throws -> Response) async -> Response {
        do {
            // Pinned, the request's statements continue on the I/O thread that read their answers; the JSON work
            // around them is small. See docs/postgres.md, "Tasks on the I/O threads".
            return try await pinsDatabaseWork ? store.pool.withPinnedExecution { try await body() } : body()
        } catch let error as ResourcePoolError {
            switch error.code {
            case .timeout, .tooManyWaiters:
                admission.shed.increment()
                return APIResponse.overloaded(reason: "\(error.code)")
            case .circuitBreakerOpen:
                return APIResponse.error(.serviceUnavailable, "the database is unreachable; retry later",
                                         retryAfterSeconds: 5)
            case .shutDown:
                return APIResponse.error(.serviceUnavailable, "the service is shutting down", retryAfterSeconds: 1)
            default:
                return internalError(error)
            }
        } catch let error as PostgresError where error.code == .statementTimeout {
            return APIResponse.error(.serviceUnavailable, "the database took too long; retry later",
                                     retryAfterSeconds: 1)
        } catch {
            return internalError(error)
        }
    }

    func internalError(_ error: any Error) -> Response {
        // The library's errors never carry connection strings, passwords or parameter values in their descriptions.
        logger.error("Request failed", metadata: ["error": "\(String(describing: error))"])
        return APIResponse.error(.internalServerError, "internal error")
    }

    func readinessResponse() -> Response {
        let statistics = store.pool.statistics.pool
        let status = ReadinessStatus(
            ready: !readiness.isDraining && !statistics.circuitBreakerOpen,
            draining: readiness.isDraining,
            circuitBreakerOpen: statistics.circuitBreakerOpen,
            idleConnections: statistics.idle,
            leasedConnections: statistics.leased,
            waiters: statistics.waiting,
            maximumConnections: statistics.effectiveMaximumSize
        )
        return APIResponse.json(status, status: status.ready ? .ok : .serviceUnavailable)
    }
}

/// The body of `GET /customers/:name`.
struct CustomerTotals: Codable, Sendable {
    var customer: String
    var orders: Int64
    var spentCents: Int64
}

/// The body of `GET /ready`.
public struct ReadinessStatus: Codable, Hashable, Sendable {
    /// Whether the instance should receive traffic.
    public var ready: Bool
    /// Whether graceful shutdown has begun.
    public var draining: Bool
    /// Whether the pool's circuit breaker is open (opening connections keeps failing).
    public var circuitBreakerOpen: Bool
    /// Idle connections in the pool.
    public var idleConnections: Int
    /// Connections held by requests.
    public var leasedConnections: Int
    /// Requests waiting for a connection.
    public var waiters: Int
    /// The pool's current maximum (moves in self-sizing mode).
    public var maximumConnections: Int
}
