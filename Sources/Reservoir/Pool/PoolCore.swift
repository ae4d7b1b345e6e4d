import CoreMetrics
import DequeModule

/// The pool's mutable state: the state machine (whose waiter queue holds each waiter's hand-off box) plus the shell's
/// per-slot tables, statistics and run phase.
///
/// The pool keeps exactly one `PoolCore` behind a `Mutex`. Acquire and release lock it, ask the state machine,
/// translate its actions into state changes and a ``PoolEffects`` value, and unlock, in the calling task: no actor
/// hop on either path. Every side effect (resuming a waiter, recording a metric, writing a log record, queueing
/// background work for `run()`) is in the effects value and happens after unlocking.
@usableFromInline
struct PoolCore<Resource: Sendable>: Sendable {
    @usableFromInline var machine: PoolStateMachine
    /// The open resources, by slot.
    @usableFromInline var entries: [PooledResource<Resource>?]
    /// The acquire site of each slot's current lease.
    @usableFromInline var sites: [AcquireSite]
    @usableFromInline var window: StatisticsWindow
    @usableFromInline var totals = ResourcePoolStatistics.Totals()
    /// Background work produced after `run()` ended; the task that caused it runs it.
    @usableFromInline var orphanJobs: [@Sendable () async -> Void] = []
    @usableFromInline var runPhase: RunPhase = .notStarted
    var lastCreationError: (any Error)?
    /// `lastCreationError` described, when it was stored: describing an error may run user code, which never runs
    /// under the lock, so error messages built under it use this text.
    var lastCreationErrorDescription: String?
    /// When each creation in flight started, by slot: a timeout error tells a creation that hangs from a small pool.
    var creationStartedAt: [Int: Duration] = [:]
    var nextResourceID = 1
    @usableFromInline var warnedNotRunning = false
    /// Self-sizing's estimator; `nil` when the option is off (then releases skip it with one check).
    @usableFromInline var sizeEstimator: PoolSizeEstimator?
    /// Whether `sizeEstimator` is set: releases test this flag, which (unlike comparing the optional with `nil`)
    /// copies nothing.
    @usableFromInline let isSelfSizing: Bool
    /// The watch tasks of waiters that queued before `run()` started, which `run()` cancels when it starts (see
    /// `ResourcePool.awaitResolutionBeforeRun`).
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

    /// Takes the background work left for the caller's task because `run()` has ended.
    @usableFromInline
    mutating func takeOrphanJobs() -> [@Sendable () async -> Void] {
        defer { self.orphanJobs = [] }
        return self.orphanJobs
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
            self.isSelfSizing = true
            self.machine.effectiveMaximum = estimator.limit
        } else {
            self.isSelfSizing = false
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
        case reject(PoolStateMachine.AcquireFailure)
    }

    /// The fast part of an acquire: ask the state machine, and on an immediate lease start it with a zero wait.
    @inlinable
    mutating func leaseRequested(
        now: Duration,
        deadline: Duration?,
        site: AcquireSite,
        retry: Bool,
        effects: inout PoolEffects<Resource>
    ) -> AcquireOutcome {
        switch self.machine.leaseRequested(now: now, deadline: deadline, retry: retry) {
        case .leased(let grant):
            self.leaseStarted(slot: grant.slot, site: site, waitedNanoseconds: 0, now: now, effects: &effects)
            return .leased(self.entries[grant.slot].unsafelyUnwrapped, grant)
        case .wait(let id):
            return .wait(id)
        case .reject(let reason):
            return .reject(reason)
        }
    }

    /// A lease started, at once or after a wait: the one place that records its site, counts it and records its
    /// wait.
    @inlinable
    mutating func leaseStarted(
        slot: Int,
        site: AcquireSite,
        waitedNanoseconds: UInt64,
        now: Duration,
        effects: inout PoolEffects<Resource>
    ) {
        self.sites[slot] = site
        self.totals.acquisitions &+= 1
        self.window.recordGrantedWait(nanoseconds: waitedNanoseconds, now: now)
        effects.recordWait(nanoseconds: waitedNanoseconds)
    }

    /// A wait ended without a lease (timed out, cancelled, failed): the one place that records such a wait.
    mutating func waitEnded(waited: Duration, now: Duration, effects: inout PoolEffects<Resource>) {
        let nanoseconds = waited.clampedNanoseconds
        self.window.recordWait(nanoseconds: nanoseconds, now: now)
        effects.recordWait(nanoseconds: nanoseconds)
    }

    /// A leased resource failed the before-lease check, before its caller got it: the one locked section of that
    /// event. The lease never reached the caller, so its acquisition is taken back and no hold time is recorded.
    mutating func validationFailed(slot: Int, now: Duration) {
        self.totals.validationFailures += 1
        self.totals.acquisitions -= 1
        self.machine.validationFailed(slot: slot, now: now)
    }

    /// The fast part of a release.
    @inlinable
    mutating func leaseReleased(
        slot: Int,
        now: Duration,
        discardReason: PoolStateMachine.EvictionReason?,
        validateIdle: Bool,
        metrics: PoolMetrics,
        effects: inout PoolEffects<Resource>
    ) {
        if validateIdle { self.machine.idleValidationRequested() }
        let heldFor = self.machine.leaseReleased(slot: slot, now: now, discardReason: discardReason)
        let nanoseconds = heldFor.clampedNanoseconds
        self.window.recordHold(nanoseconds: nanoseconds, now: now)
        effects.holdNanoseconds = nanoseconds
        if self.isSelfSizing {
            self.feedSizeEstimator(heldFor: heldFor, now: now, metrics: metrics, effects: &effects)
        }
    }

    /// Self-sizing: hands the release to the estimator and applies a new effective maximum to the state machine.
    @usableFromInline
    mutating func feedSizeEstimator(
        heldFor: Duration,
        now: Duration,
        metrics: PoolMetrics,
        effects: inout PoolEffects<Resource>
    ) {
        let waiting = self.machine.waiters.count
        guard let limit = self.sizeEstimator?.leaseReleased(heldFor: heldFor, waiting: waiting, now: now) else {
            return
        }
        self.machine.effectiveMaximumChanged(to: limit, now: now)
        if metrics.effectiveMaximum.publish(limit) { effects.changedGauges.insert(.effectiveMaximum) }
    }

    /// Whether the state machine left actions to carry out.
    @inlinable
    var hasPendingActions: Bool {
        !self.machine.actions.isEmpty
    }

    /// Publishes the count gauges whose value changed; they are recorded after unlocking.
    @inlinable
    func publishCounts(_ metrics: PoolMetrics, effects: inout PoolEffects<Resource>) {
        if metrics.idleCount.publish(self.machine.idle.count) { effects.changedGauges.insert(.idle) }
        if metrics.usedCount.publish(self.machine.counts.leased) { effects.changedGauges.insert(.used) }
        if metrics.pendingRequests.publish(self.machine.waiters.count) { effects.changedGauges.insert(.pending) }
        if metrics.creating.publish(self.machine.counts.creating) { effects.changedGauges.insert(.creating) }
    }
}
