import CoreMetrics
import DequeModule

/// The pool's mutable state: the state machine plus the shell's per-slot tables, waiters, statistics and run phase.
///
/// The pool keeps exactly one `PoolCore` behind a `Mutex`. Acquire and release lock it, ask the state machine, carry
/// out its actions and unlock, in the calling task: no actor hop on either path. What must not happen under the
/// lock (resuming a waiter's continuation) is collected in ``PendingResumes`` and done after unlocking. Background
/// work (creations, closes, hooks, timers) is only queued under the lock; `run()` executes it.
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
    /// The hand-off box of each queued waiter.
    @usableFromInline var waiterBoxes: [PoolStateMachine.WaiterID: WaiterBox] = [:]
    /// Background work produced after `run()` ended; the task that caused it runs it.
    @usableFromInline var orphanJobs: [@Sendable () async -> Void] = []
    @usableFromInline var runPhase: RunPhase = .notStarted
    var lastCreationError: (any Error)?
    /// When each creation in flight started, by slot: a timeout error tells a creation that hangs from a small pool.
    var creationStartedAt: [Int: Duration] = [:]
    var nextResourceID = 1
    @usableFromInline var warnedNotRunning = false
    /// Self-sizing's estimator; `nil` when the option is off (then releases skip it with one check).
    @usableFromInline var sizeEstimator: PoolSizeEstimator?
    /// The watch tasks of waiters that queued before `run()` started, which `run()` cancels when it starts (see
    /// `ResourcePool._awaitGrantBeforeRun`).
    var preRunWatches: [PoolStateMachine.WaiterID: Task<Void, Never>] = [:]
    /// Leak reports by acquire site (see ``ResourcePoolStatistics/leaksBySite``); written only when a leak is reported.
    var leakSites: [String: ResourcePoolStatistics.LeakSite] = [:]

    /// Counts a leak report under its acquire site, or under "other sites" once the table is full.
    mutating func recordLeak(site: AcquireSite, dropped: Bool) {
        var name = site.description
        if self.leakSites[name] == nil, self.leakSites.count >= ResourcePoolStatistics.LeakSite.maximumSites - 1 {
            name = ResourcePoolStatistics.LeakSite.otherSites
        }
        if dropped {
            self.leakSites[name, default: .init(site: name)].dropped += 1
        } else {
            self.leakSites[name, default: .init(site: name)].heldTooLong += 1
        }
    }

    /// The leak reports by site, most reports first.
    var leaksBySite: [ResourcePoolStatistics.LeakSite] {
        self.leakSites.values.sorted {
            ($0.dropped + $0.heldTooLong, $1.site) > ($1.dropped + $1.heldTooLong, $0.site)
        }
    }

    @usableFromInline
    enum RunPhase: Sendable {
        case notStarted
        case running
        /// `run()` has ended (or is ending): background work runs in the task that causes it.
        case finished
    }

    init(machine: PoolStateMachine, statisticsWindow: Duration, selfSizing: SelfSizingPolicy? = nil) {
        let size = machine.configuration.maximumSize
        self.machine = machine
        if let selfSizing {
            let estimator = PoolSizeEstimator(
                policy: selfSizing,
                minimumSize: machine.configuration.minimumSize,
                maximumSize: size
            )
            self.sizeEstimator = estimator
            self.machine.effectiveMaximum = estimator.limit
        }
        self.entries = Array(repeating: nil, count: size)
        self.sites = Array(repeating: AcquireSite(fileID: "", line: 0, function: ""), count: size)
        self.window = StatisticsWindow(length: statisticsWindow)
    }

    /// What a lease request does next.
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
        if self.sizeEstimator != nil {
            self.feedSizeEstimator(heldFor: heldFor, now: now, metrics: metrics)
        }
        self.recordCounts(metrics)
    }

    /// Self-sizing: hands the release to the estimator and applies a new effective maximum to the state machine.
    @usableFromInline
    mutating func feedSizeEstimator(heldFor: Duration, now: Duration, metrics: PoolMetrics) {
        let waiting = self.machine.waiters.count
        guard let limit = self.sizeEstimator?.leaseReleased(heldFor: heldFor, waiting: waiting, now: now) else {
            return
        }
        self.machine.effectiveMaximumChanged(to: limit, now: now)
        metrics.effectiveMaximum.record(limit)
    }

    /// Whether the state machine left actions to carry out.
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
