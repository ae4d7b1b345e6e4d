import CoreMetrics
import DequeModule

/// The pool's mutable hot state: the state machine plus the shell's per-slot tables and statistics.
///
/// The actor stores exactly one `PoolCore`, and the acquire and release fast paths are `mutating` methods on it, so
/// each of them costs the actor a single dynamic exclusivity check (an actor's stored properties are checked at run
/// time, each check a thread-local lookup) instead of one per field touched.
@usableFromInline
struct PoolCore<Resource: Sendable>: Sendable {
    @usableFromInline var machine: PoolStateMachine
    /// The open resources, by slot.
    @usableFromInline var entries: [PooledResource<Resource>?]
    /// The acquire site of each slot's current lease.
    @usableFromInline var sites: [AcquireSite]
    @usableFromInline var window: StatisticsWindow
    @usableFromInline var totals = ResourcePoolStatistics.Totals()
    @usableFromInline var recorded = RecordedCounts()

    init(machine: PoolStateMachine, statisticsWindow: Duration) {
        let size = machine.configuration.maximumSize
        self.machine = machine
        self.entries = Array(repeating: nil, count: size)
        self.sites = Array(repeating: AcquireSite(fileID: "", line: 0, function: ""), count: size)
        self.window = StatisticsWindow(length: statisticsWindow)
    }

    /// What a lease request needs from the actor next.
    @usableFromInline
    enum AcquireOutcome {
        case leased(PooledResource<Resource>, PoolStateMachine.Grant)
        case wait(PoolStateMachine.WaiterID)
        case reject(PoolStateMachine.RejectionReason)
    }

    /// The fast part of an acquire: ask the state machine, and on an immediate lease record the site, the counts and
    /// a zero wait.
    @inlinable
    mutating func leaseRequested(
        now: Duration,
        deadline: Duration?,
        site: AcquireSite,
        retry: Bool,
        metrics: PoolMetrics
    ) -> AcquireOutcome {
        switch self.machine.leaseRequested(now: now, deadline: deadline, retry: retry) {
        case .leased(let grant):
            self.sites[grant.slot] = site
            self.totals.acquisitions &+= 1
            self.window.recordImmediateAcquire(now: now)
            metrics.waitTime.recordNanoseconds(0)
            self.recordCounts(metrics)
            return .leased(self.entries[grant.slot].unsafelyUnwrapped, grant)
        case .wait(let id):
            return .wait(id)
        case .reject(let reason):
            return .reject(reason)
        }
    }

    /// The fast part of a release.
    @inlinable
    mutating func leaseReleased(
        slot: Int,
        now: Duration,
        discardReason: PoolStateMachine.EvictionReason?,
        validateIdle: Bool,
        metrics: PoolMetrics
    ) {
        if validateIdle { self.machine.idleValidationRequested() }
        let heldFor = self.machine.leaseReleased(slot: slot, now: now, discardReason: discardReason)
        let nanoseconds = heldFor.clampedNanoseconds
        self.window.recordHold(nanoseconds: nanoseconds, now: now)
        metrics.useTime.recordNanoseconds(Int64(clamping: nanoseconds))
        self.recordCounts(metrics)
    }

    /// Whether the state machine left work for the actor.
    @inlinable
    var hasPendingActions: Bool {
        !self.machine.actions.isEmpty
    }

    /// Brings the count gauges up to date, recording only values that changed.
    @inlinable
    mutating func recordCounts(_ metrics: PoolMetrics) {
        let idle = self.machine.idle.count
        let used = self.machine.counts.leased
        if idle != self.recorded.idle {
            self.recorded.idle = idle
            metrics.idleCount.record(idle)
        }
        if used != self.recorded.used {
            self.recorded.used = used
            metrics.usedCount.record(used)
        }
        let pending = self.machine.waiters.count
        let creating = self.machine.counts.creating
        if pending != self.recorded.pending || creating != self.recorded.creating {
            self.recordSlowCounts(metrics, pending: pending, creating: creating)
        }
    }

    @usableFromInline
    mutating func recordSlowCounts(_ metrics: PoolMetrics, pending: Int, creating: Int) {
        if pending != self.recorded.pending {
            self.recorded.pending = pending
            metrics.pendingRequests.record(pending)
        }
        if creating != self.recorded.creating {
            self.recorded.creating = creating
            metrics.creating.record(creating)
        }
    }
}
