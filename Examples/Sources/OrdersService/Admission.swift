import CoreMetrics
import Hummingbird
import Logging
import ReservoirBackpressure
import Synchronization

/// What stands between a request and the database: a per-client rate limit (429) and a concurrency limit (503).
///
/// Both answer at once when they refuse, with a `Retry-After` header, so that a client past the service's capacity
/// learns it in microseconds instead of waiting for a timeout; the requests that are admitted keep a latency close to
/// the unloaded one, because the queue in front of the database stays short.
public final class AdmissionControl: Sendable {
    /// The limiter in front of the database routes: fixed or adaptive (the adaptive one's inner limiter), or `nil`
    /// in the self-sizing and unbounded modes.
    public let limiter: ConcurrencyLimiter<ContinuousClock>?
    /// The adaptive limiter, in ``AdmissionMode/adaptive`` mode.
    public let adaptive: AdaptiveConcurrencyLimiter<ContinuousClock>?
    let clientLimits: ClientRateLimits?
    let queueTimeout: Duration
    let shed: Counter
    let rateLimited: Counter

    init(configuration: OrdersConfiguration, metricsFactory: any MetricsFactory, logger: Logger) throws {
        let limit = configuration.effectiveConcurrencyLimit
        let queue = configuration.effectiveQueueLength
        switch configuration.admission.base {
        case .fixed:
            self.adaptive = nil
            self.limiter = try ConcurrencyLimiter(
                limit: limit,
                maxQueueLength: queue,
                label: "orders",
                metricsFactory: metricsFactory,
                logger: logger
            )
        case .adaptive:
            let adaptive = try AdaptiveConcurrencyLimiter(
                .gradient(initialLimit: limit, minLimit: 1, maxLimit: max(limit, configuration.poolSize * 4)),
                maxQueueLength: queue,
                label: "orders",
                metricsFactory: metricsFactory,
                logger: logger
            )
            self.adaptive = adaptive
            self.limiter = adaptive.limiter
        case .selfSizing, .unbounded:
            self.adaptive = nil
            self.limiter = nil
        }
        if let rate = configuration.clientRate, let burst = configuration.effectiveClientBurst {
            self.clientLimits = try ClientRateLimits(policy: .tokenBucket(rate: rate, burst: burst))
        } else {
            self.clientLimits = nil
        }
        self.queueTimeout = configuration.queueTimeout
        self.shed = Counter(label: "orders_shed_total", factory: metricsFactory)
        self.rateLimited = Counter(label: "orders_rate_limited_total", factory: metricsFactory)
    }
}

/// One token bucket per client, created on first use.
///
/// The table is bounded: past ``maximumClients`` it is emptied, which gives every client a fresh bucket (a burst's
/// worth of extra requests) rather than letting a stream of new client names grow memory without limit.
final class ClientRateLimits: Sendable {
    static let maximumClients = 10_000

    let policy: RateLimitPolicy
    private let limiters = Mutex<[String: RateLimiter<ContinuousClock>]>([:])

    init(policy: RateLimitPolicy) throws(BackpressureError) {
        // Validates the policy once, here, so that `limiter(for:)` cannot fail.
        _ = try RateLimiter(policy, metricsFactory: NOOPMetricsHandler.instance)
        self.policy = policy
    }

    /// Takes one permit from the client's bucket.
    ///
    /// - Returns: `nil` when the request may go on, or how many whole seconds the client should wait.
    func admit(client: String) -> Int? {
        let limiter = limiters.withLock { limiters -> RateLimiter<ContinuousClock>? in
            if let limiter = limiters[client] { return limiter }
            if limiters.count >= Self.maximumClients { limiters.removeAll(keepingCapacity: true) }
            // Per-client limiters report no metrics: a dimension per client would be unbounded. The policy was
            // validated in `init`, so creation does not fail.
            let limiter = try? RateLimiter(policy, metricsFactory: NOOPMetricsHandler.instance)
            limiters[client] = limiter
            return limiter
        }
        guard let limiter, (try? limiter.tryAcquire()) != true else { return nil }
        return max(1, Int((1 / policy.rate).rounded(.up)))
    }
}

/// Applies ``AdmissionControl`` to the routes behind it.
struct AdmissionMiddleware<Context: OrdersRequestContextProtocol>: RouterMiddleware {
    let admission: AdmissionControl

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let clientLimits = admission.clientLimits,
            let retryAfter = clientLimits.admit(client: context.clientKey(for: request))
        {
            admission.rateLimited.increment()
            return APIResponse.error(
                .tooManyRequests,
                "this client is over its request rate; retry later",
                retryAfterSeconds: retryAfter
            )
        }
        guard let limiter = admission.limiter else {
            return try await next(request, context)
        }
        let permit: ConcurrencyLimiter<ContinuousClock>.Permit
        do {
            permit = try await limiter.acquire(timeout: admission.queueTimeout)
        } catch {
            admission.shed.increment()
            return APIResponse.overloaded(reason: "\(error.code)")
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            permit.release(outcome: .ignored)
            throw error
        }
        // An overload further in (the pool timed out) is what an adaptive limiter must back off from.
        permit.release(outcome: response.status == .serviceUnavailable ? .dropped : .success)
        return response
    }
}
