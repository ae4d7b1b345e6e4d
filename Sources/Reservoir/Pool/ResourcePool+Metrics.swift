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

    @usableFromInline let idleCount: Gauge
    @usableFromInline let usedCount: Gauge
    @usableFromInline let pendingRequests: Gauge
    @usableFromInline let creating: Gauge
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
    let circuitBreakerOpen: Gauge
    let evictions: [PoolStateMachine.EvictionReason: Counter]
    let rejections: [PoolStateMachine.RejectionReason: Counter]
    let hookFailures: [Hook: Counter]
    let maximum: Gauge
    let idleMaximum: Gauge
    let idleMinimum: Gauge
    /// The effective maximum (`maximumSize` unless self-sizing moves it).
    @usableFromInline let effectiveMaximum: Gauge

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
        self.idleCount = gauge(Name.count, [(Dimension.state, "idle")])
        self.usedCount = gauge(Name.count, [(Dimension.state, "used")])
        self.pendingRequests = gauge(Name.pendingRequests)
        self.creating = gauge(Name.creating)
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
        self.circuitBreakerOpen = gauge(Name.circuitBreakerOpen)
        var evictions: [PoolStateMachine.EvictionReason: Counter] = [:]
        for reason in PoolStateMachine.EvictionReason.allCases {
            evictions[reason] = counter(Name.evictions, [(Dimension.reason, reason.rawValue)])
        }
        self.evictions = evictions
        var rejections: [PoolStateMachine.RejectionReason: Counter] = [:]
        for reason in PoolStateMachine.RejectionReason.allCases {
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
        self.effectiveMaximum = gauge(Name.effectiveMaximum)

        self.maximum.record(maximumSize)
        self.idleMaximum.record(maximumSize)
        self.idleMinimum.record(minimumSize)
        self.effectiveMaximum.record(effectiveMaximumSize ?? maximumSize)
        self.idleCount.record(0)
        self.usedCount.record(0)
        self.pendingRequests.record(0)
        self.creating.record(0)
        self.circuitBreakerOpen.record(0)
    }
}

/// The last values recorded in the count gauges, so that a gauge is recorded only when its value changes.
@usableFromInline
struct RecordedCounts: Sendable {
    @usableFromInline var idle = 0
    @usableFromInline var used = 0
    @usableFromInline var pending = 0
    @usableFromInline var creating = 0
    @usableFromInline init() {}
}
