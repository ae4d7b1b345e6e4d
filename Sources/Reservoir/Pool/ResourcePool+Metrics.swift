import CoreMetrics
import DequeModule
import Logging

/// The pool's metric objects, created once when the pool is created, from one `MetricsFactory`.
///
/// Names follow OpenTelemetry's `db.client.connection.*` semantic conventions where one exists, `reservoir.pool.*`
/// otherwise. Dimensions are bounded: the pool name (`db.client.connection.pool.name`) on every metric, plus
/// `db.client.connection.state`, `reason` or `hook` where listed. See `docs/pool.md` for the table.
@usableFromInline
final class PoolMetrics: Sendable {
    /// Metric names, in one place.
    enum Name {
        static let count = "db.client.connection.count"
        static let idleMaximum = "db.client.connection.idle.max"
        static let idleMinimum = "db.client.connection.idle.min"
        static let maximum = "db.client.connection.max"
        static let pendingRequests = "db.client.connection.pending_requests"
        static let timeouts = "db.client.connection.timeouts"
        static let createTime = "db.client.connection.create_time"
        static let waitTime = "db.client.connection.wait_time"
        static let useTime = "db.client.connection.use_time"
        static let creating = "reservoir.pool.creating"
        static let leaks = "reservoir.pool.leaks"
        static let leaksRecovered = "reservoir.pool.leaks.recovered"
        static let evictions = "reservoir.pool.evictions"
        static let validationFailures = "reservoir.pool.validation_failures"
        static let creationFailures = "reservoir.pool.creation_failures"
        static let rejections = "reservoir.pool.rejections"
        static let cancellations = "reservoir.pool.cancellations"
        static let hookFailures = "reservoir.pool.hook_failures"
        static let circuitBreakerOpen = "reservoir.pool.circuit_breaker.open"
        static let effectiveMaximum = "reservoir.pool.effective_max"
    }

    /// Dimension keys.
    enum Dimension {
        static let poolName = "db.client.connection.pool.name"
        static let state = "db.client.connection.state"
        static let reason = "reason"
        static let hook = "hook"
        static let kind = "kind"
    }

    /// The hooks, as named in `reservoir.pool.hook_failures{hook=…}`.
    enum Hook: String, CaseIterable {
        case afterCreate = "after_create"
        case beforeLease = "before_lease"
        case afterRelease = "after_release"
        case keepAlive = "keep_alive"
        case beforeClose = "before_close"
    }

    @usableFromInline let idleCount: PublishedGauge
    @usableFromInline let usedCount: PublishedGauge
    @usableFromInline let pendingRequests: PublishedGauge
    @usableFromInline let creating: PublishedGauge
    @usableFromInline let waitTime: Timer
    @usableFromInline let useTime: Timer
    let createTime: Timer
    let timeouts: Counter
    let leaksDropped: Counter
    let leaksHeldTooLong: Counter
    let leaksRecovered: Counter
    let validationFailures: Counter
    let creationFailures: Counter
    let cancellations: Counter
    let circuitBreakerOpen: PublishedGauge
    let evictions: [PoolStateMachine.EvictionReason: Counter]
    let rejections: [PoolStateMachine.AcquireFailure: Counter]
    let hookFailures: [Hook: Counter]
    let maximum: Gauge
    let idleMaximum: Gauge
    let idleMinimum: Gauge
    /// The effective maximum (`maximumSize` unless self-sizing moves it).
    @usableFromInline let effectiveMaximum: PublishedGauge

    init(
        poolName: String,
        minimumSize: Int,
        maximumSize: Int,
        effectiveMaximumSize: Int? = nil,
        factory: any MetricsFactory
    ) {
        let pool = [(Dimension.poolName, poolName)]
        func gauge(_ label: String, _ extra: [(String, String)] = []) -> Gauge {
            Gauge(label: label, dimensions: pool + extra, factory: factory)
        }
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: pool + extra, factory: factory)
        }
        func timer(_ label: String) -> Timer {
            Timer(label: label, dimensions: pool, factory: factory)
        }
        self.idleCount = PublishedGauge(gauge(Name.count, [(Dimension.state, "idle")]), initialValue: 0)
        self.usedCount = PublishedGauge(gauge(Name.count, [(Dimension.state, "used")]), initialValue: 0)
        self.pendingRequests = PublishedGauge(gauge(Name.pendingRequests), initialValue: 0)
        self.creating = PublishedGauge(gauge(Name.creating), initialValue: 0)
        self.waitTime = timer(Name.waitTime)
        self.useTime = timer(Name.useTime)
        self.createTime = timer(Name.createTime)
        self.timeouts = counter(Name.timeouts)
        self.leaksDropped = counter(Name.leaks, [(Dimension.kind, "dropped")])
        self.leaksHeldTooLong = counter(Name.leaks, [(Dimension.kind, "held_too_long")])
        self.leaksRecovered = counter(Name.leaksRecovered)
        self.validationFailures = counter(Name.validationFailures)
        self.creationFailures = counter(Name.creationFailures)
        self.cancellations = counter(Name.cancellations)
        self.circuitBreakerOpen = PublishedGauge(gauge(Name.circuitBreakerOpen), initialValue: 0)
        var evictions: [PoolStateMachine.EvictionReason: Counter] = [:]
        for reason in PoolStateMachine.EvictionReason.allCases {
            evictions[reason] = counter(Name.evictions, [(Dimension.reason, reason.rawValue)])
        }
        self.evictions = evictions
        var rejections: [PoolStateMachine.AcquireFailure: Counter] = [:]
        for reason in PoolStateMachine.AcquireFailure.rejectionReasons {
            rejections[reason] = counter(Name.rejections, [(Dimension.reason, reason.rawValue)])
        }
        self.rejections = rejections
        var hookFailures: [Hook: Counter] = [:]
        for hook in Hook.allCases {
            hookFailures[hook] = counter(Name.hookFailures, [(Dimension.hook, hook.rawValue)])
        }
        self.hookFailures = hookFailures
        self.maximum = gauge(Name.maximum)
        self.idleMaximum = gauge(Name.idleMaximum)
        self.idleMinimum = gauge(Name.idleMinimum)
        self.effectiveMaximum = PublishedGauge(
            gauge(Name.effectiveMaximum),
            initialValue: effectiveMaximumSize ?? maximumSize
        )

        self.maximum.record(maximumSize)
        self.idleMaximum.record(maximumSize)
        self.idleMinimum.record(minimumSize)
    }

    /// The gauges the pool publishes under its lock, as a set: which ones a locked section changed.
    @usableFromInline
    struct Gauges: OptionSet, Sendable {
        @usableFromInline let rawValue: UInt8

        @inlinable
        init(rawValue: UInt8) { self.rawValue = rawValue }

        @usableFromInline static let idle = Gauges(rawValue: 1 << 0)
        @usableFromInline static let used = Gauges(rawValue: 1 << 1)
        @usableFromInline static let pending = Gauges(rawValue: 1 << 2)
        @usableFromInline static let creating = Gauges(rawValue: 1 << 3)
        @usableFromInline static let effectiveMaximum = Gauges(rawValue: 1 << 4)
        @usableFromInline static let circuitBreakerOpen = Gauges(rawValue: 1 << 5)
    }

    /// Records the latest published value of each gauge in `gauges`, after unlocking.
    @inlinable
    func recordLatest(_ gauges: Gauges) {
        if gauges.contains(.idle) { self.idleCount.recordLatest() }
        if gauges.contains(.used) { self.usedCount.recordLatest() }
        if gauges.rawValue & ~(Gauges.idle.rawValue | Gauges.used.rawValue) != 0 { self.recordLatestRare(gauges) }
    }

    @usableFromInline
    func recordLatestRare(_ gauges: Gauges) {
        if gauges.contains(.pending) { self.pendingRequests.recordLatest() }
        if gauges.contains(.creating) { self.creating.recordLatest() }
        if gauges.contains(.effectiveMaximum) { self.effectiveMaximum.recordLatest() }
        if gauges.contains(.circuitBreakerOpen) { self.circuitBreakerOpen.recordLatest() }
    }
}
