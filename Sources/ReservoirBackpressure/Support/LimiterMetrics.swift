import CoreMetrics

/// Metrics shared by the limiters, created once per limiter.
///
/// | Name | Type | Dimensions | Meaning |
/// |---|---|---|---|
/// | `backpressure.limiter.granted` | counter | `kind`, `limiter` | permits/calls admitted |
/// | `backpressure.limiter.rejected` | counter | `kind`, `limiter` | calls refused (no permit, queue full, shed, deadline) |
/// | `backpressure.limiter.wait` | timer | `kind`, `limiter` | time a caller waited before admission |
/// | `backpressure.limiter.limit` | gauge | `kind`, `limiter` | current concurrency limit (concurrency limiters) |
/// | `backpressure.limiter.in_flight` | gauge | `kind`, `limiter` | operations holding a permit |
/// | `backpressure.limiter.waiting` | meter | `kind`, `limiter` | callers queued for a permit (concurrency limiters) |
/// | `backpressure.limiter.latency_estimate` | gauge | `kind`, `limiter` | adaptive limiter's baseline latency, ns |
@usableFromInline
struct LimiterMetrics: Sendable {
    @usableFromInline let granted: Counter
    @usableFromInline let rejected: Counter
    @usableFromInline let waited: Timer
    @usableFromInline let limit: Gauge
    @usableFromInline let inFlight: Gauge
    @usableFromInline let latencyEstimate: Gauge
    /// Raised when a caller starts waiting in the queue and lowered when its wait ends (admitted or failed): the
    /// increments and decrements commute, so the value is right whatever order threads record them in.
    @usableFromInline let waiting: Meter

    init(kind: String, label: String, factory: any MetricsFactory) {
        let dimensions = [("kind", kind), ("limiter", label)]
        self.granted = Counter(label: "backpressure.limiter.granted", dimensions: dimensions, factory: factory)
        self.rejected = Counter(label: "backpressure.limiter.rejected", dimensions: dimensions, factory: factory)
        self.waited = Timer(label: "backpressure.limiter.wait", dimensions: dimensions, factory: factory)
        self.limit = Gauge(label: "backpressure.limiter.limit", dimensions: dimensions, factory: factory)
        self.inFlight = Gauge(label: "backpressure.limiter.in_flight", dimensions: dimensions, factory: factory)
        self.waiting = Meter(label: "backpressure.limiter.waiting", dimensions: dimensions, factory: factory)
        self.latencyEstimate = Gauge(
            label: "backpressure.limiter.latency_estimate",
            dimensions: dimensions,
            factory: factory
        )
    }
}
