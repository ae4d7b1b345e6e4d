import CoreMetrics
import Logging
import ReservoirBackpressure
import ServiceLifecycle

/// A background job: an order was committed; record its event row and the customer's running totals.
public struct OrderCreated: Hashable, Sendable {
    /// The order's number.
    public var orderID: Int64
    /// Who ordered.
    public var customer: String
    /// What the order cost, in cents.
    public var totalCents: Int64
}

/// The background job queue: a `BoundedChannel` that request handlers feed without waiting, and a consumer that
/// drains it in batches, running as a `Service` in the service's group.
///
/// Handlers call ``enqueue(_:)``, which never waits: when the queue is full the job is dropped, counted in
/// `orders_jobs_dropped_total` and logged (the order itself is committed; only its summary row is lost), so a slow
/// consumer can never slow down or block the requests that feed it.
///
/// Shutdown: the group stops the HTTP server before this service, so when graceful shutdown reaches it no handler
/// can enqueue any more; it finishes the channel, writes what is buffered, and returns, before the pool closes.
final class OrderEventQueue: Service, Sendable {
    /// Jobs written per transaction, at most.
    static let batchSize = 256

    let channel: BoundedChannel<OrderCreated>
    let store: OrderStore
    let logger: Logger
    let dropped: Counter
    let written: Counter
    let failed: Counter

    init(capacity: Int, store: OrderStore, metricsFactory: any MetricsFactory, logger: Logger) throws {
        var configuration = BoundedChannel<OrderCreated>.Configuration(capacity: capacity)
        configuration.overflowPolicy = .reject
        configuration.label = "order_events"
        configuration.metricsFactory = metricsFactory
        configuration.logger = logger
        self.channel = try BoundedChannel(configuration: configuration)
        self.store = store
        self.logger = logger
        self.dropped = Counter(label: "orders_jobs_dropped_total", factory: metricsFactory)
        self.written = Counter(label: "orders_jobs_written_total", factory: metricsFactory)
        self.failed = Counter(label: "orders_jobs_failed_total", factory: metricsFactory)
    }

    /// Hands a job to the consumer without waiting; drops it (counted, logged) when the queue is full or closed.
    func enqueue(_ job: OrderCreated) {
        do {
            try channel.trySend(job)
        } catch {
            dropped.increment()
            logger.warning(
                "Background job dropped",
                metadata: ["order.id": "\(error.element.orderID)", "reason": "\(error.code)"]
            )
        }
    }

    /// Drains the queue until graceful shutdown, then writes what is left and returns.
    func run() async throws {
        try await withGracefulShutdownHandler {
            while let first = try await channel.receive() {
                var batch = [first]
                while batch.count < Self.batchSize, let next = channel.tryReceive() {
                    batch.append(next)
                }
                await write(batch)
            }
        } onGracefulShutdown: {
            self.channel.finish()
        }
    }

    /// Writes one batch; a failure is logged and counted, and the batch is lost (a real service might retry or
    /// keep an outbox table instead).
    private func write(_ batch: [OrderCreated]) async {
        do {
            try await store.record(batch)
            written.increment(by: batch.count)
        } catch {
            failed.increment(by: batch.count)
            logger.error(
                "Could not record background jobs",
                metadata: ["jobs": "\(batch.count)", "error": "\(String(describing: error))"]
            )
        }
    }
}
