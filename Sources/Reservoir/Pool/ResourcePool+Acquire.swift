import CoreMetrics
import DequeModule
import Logging
import Synchronization

/// What `acquire` hands back, and what a served waiter is resumed with: the resource, what the state machine said
/// about it, and the deadline to reuse if the resource fails validation and the caller must try again.
@usableFromInline
struct AcquiredResource<Resource: Sendable>: Sendable {
    @usableFromInline let entry: PooledResource<Resource>
    @usableFromInline let grant: PoolStateMachine.Grant
    @usableFromInline let deadline: Duration?

    @inlinable
    init(entry: PooledResource<Resource>, grant: PoolStateMachine.Grant, deadline: Duration?) {
        self.entry = entry
        self.grant = grant
        self.deadline = deadline
    }
}

// MARK: - The hot path: acquire and release (inlinable, so callers in other modules get it specialised)

extension ResourcePool {
    @inlinable
    nonisolated func acquire(
        timeout: Duration?,
        deadline: Duration?,
        site: AcquireSite,
        retry: Bool
    ) async throws -> AcquiredResource<Resource> {
        let now = self.timeSinceEpoch()
        var effectiveDeadline = deadline
        if effectiveDeadline == nil, let timeout = timeout ?? self.defaultAcquireTimeout {
            effectiveDeadline = now + timeout
        }
        let deadline = effectiveDeadline
        // The effects value is created inside the closure and returned from it (moved, never captured), so that
        // the specialised code neither boxes nor copies it.
        let (outcome, effects) = self.state.withLock { core -> (LockedAcquire<Resource>, PoolEffects<Resource>) in
            var effects = PoolEffects<Resource>()
            let outcome: LockedAcquire<Resource>
            switch core.leaseRequested(now: now, deadline: deadline, site: site, retry: retry, effects: &effects) {
            case .leased(let entry, let grant):
                outcome = .leased(entry, grant)
            case .wait(let id):
                outcome = .wait(self.enqueueWaiter(&core, id: id, site: site, now: now, deadline: deadline))
            case .reject(let reason):
                outcome = .reject(self.countRejection(&core, reason, now: now, effects: &effects))
            }
            self.collectEffects(&core, now: now, effects: &effects)
            return (outcome, effects)
        }
        self.applyEffects(effects)
        switch outcome {
        case .leased(let entry, let grant):
            return AcquiredResource(entry: entry, grant: grant, deadline: effectiveDeadline)
        case .wait(let box):
            return try await self.waitInQueue(box)
        case .reject(let error):
            throw error
        }
    }

    /// Ends a lease in the state machine.
    ///
    /// - Returns: background work to run in the caller's task because `run()` has already ended (almost always
    ///   `nil`).
    @inlinable
    nonisolated func releaseSlot(
        slot: Int,
        discardReason: PoolStateMachine.EvictionReason?,
        validateIdle: Bool
    ) -> [@Sendable () async -> Void]? {
        let now = self.timeSinceEpoch()
        let (orphans, effects) = self.state.withLock { core -> ([@Sendable () async -> Void]?, PoolEffects<Resource>) in
            var effects = PoolEffects<Resource>()
            core.leaseReleased(
                slot: slot,
                now: now,
                discardReason: discardReason,
                validateIdle: validateIdle,
                metrics: self.metrics,
                effects: &effects
            )
            self.collectEffects(&core, now: now, effects: &effects)
            return (core.orphanJobs.isEmpty ? nil : core.takeOrphanJobs(), effects)
        }
        self.applyEffects(effects)
        return orphans
    }

    /// Returns a lease: runs the after-release hook in the caller's task, then hands the resource back.
    @inlinable @inline(__always)
    nonisolated func returnLease(
        _ entry: PooledResource<Resource>,
        site: AcquireSite,
        markedBroken: Bool,
        error: (any Error)?
    ) async {
        var discardReason: PoolStateMachine.EvictionReason? = markedBroken ? .discarded : nil
        var validateIdle = false
        if let hook = self.hooks.afterRelease {
            let decision = await self.runAfterReleaseHook(
                hook,
                entry: entry,
                context: ResourceReleaseContext(acquireSite: site, markedBroken: markedBroken, error: error)
            )
            if !decision.keep { discardReason = .discarded }
            validateIdle = decision.validateIdle
        }
        if let orphans = self.releaseSlot(
            slot: entry.slot,
            discardReason: discardReason,
            validateIdle: validateIdle
        ) {
            for job in orphans { await job() }
        }
    }

    /// Turns the state machine's pending actions into state changes and effects, and publishes the count gauges.
    /// Call it with the lock held, and apply `effects` (``applyEffects(_:)``) after unlocking.
    ///
    /// - Parameter now: the time of the event, if the caller has it (saves a clock read).
    @inlinable
    nonisolated func collectEffects(
        _ core: inout PoolCore<Resource>,
        now: Duration? = nil,
        effects: inout PoolEffects<Resource>
    ) {
        if core.hasPendingActions { self.performActions(&core, now: now, effects: &effects) }
        core.publishCounts(self.metrics, effects: &effects)
    }
}

/// What the locked part of an acquire decided.
@usableFromInline
enum LockedAcquire<Resource: Sendable>: Sendable {
    case leased(PooledResource<Resource>, PoolStateMachine.Grant)
    case wait(WaiterBox<Resource>)
    case reject(ResourcePoolError)
}

// MARK: - The slow paths

extension ResourcePool {
    /// Attaches a waiter's hand-off box to its queue entry, in the same locked section as the state machine's
    /// decision that it waits, so that a release on another thread always finds it.
    @inlinable
    nonisolated func enqueueWaiter(
        _ core: inout PoolCore<Resource>,
        id: PoolStateMachine.WaiterID,
        site: AcquireSite,
        now: Duration,
        deadline: Duration?
    ) -> WaiterBox<Resource> {
        let beforeRun: Bool
        switch core.runPhase {
        case .notStarted: beforeRun = true
        case .running, .finished: beforeRun = false
        }
        let box = WaiterBox<Resource>(
            id: id,
            site: site,
            enqueuedAt: now,
            deadline: deadline,
            enqueuedBeforeRun: beforeRun
        )
        core.machine.waiters.attach(PoolStateMachine.WaiterPayload(box), to: id)
        return box
    }

    /// Waits until the pool resumes this waiter with its resource or fails it, or the task is cancelled. The box's
    /// deadline bounds the wait even when `run()` has not started.
    ///
    /// Inlinable, so that callers in other modules get it specialised: every acquire that waits comes through here,
    /// and generic code would install and resume through runtime metadata. Never inlined: inside `acquire` its
    /// suspension points would enlarge the async frame of every acquire, including those served at once (measured:
    /// about 10 % more CPU per uncontended cycle). The rare paths (before `run()`, cancelled) stay out of line.
    @inlinable @inline(never)
    nonisolated func waitInQueue(_ box: WaiterBox<Resource>) async throws -> AcquiredResource<Resource> {
        do {
            if box.enqueuedBeforeRun {
                return try await self.awaitResolutionBeforeRun(box)
            }
            return try await self.awaitResolution(box)
        } catch let error as CancellationError {
            self.waitCancelled(box)
            throw error
        }
    }

    /// A waiting caller's task was cancelled: the wait ends, counted once.
    @usableFromInline
    nonisolated func waitCancelled(_ box: WaiterBox<Resource>) {
        let now = self.timeSinceEpoch()
        var effects = PoolEffects<Resource>()
        self.state.withLock { core in
            // Scenario: the state machine may already have picked this waiter, and the hand-off failed because the
            // cancellation came first; then it is no longer queued and its resource went back into service
            // (`handoffFailed`). Either way the caller was cancelled while waiting, and is counted once, here.
            _ = core.machine.waiterCancelled(box.id)
            core.totals.cancellations += 1
            core.waitEnded(waited: now - box.enqueuedAt, now: now, effects: &effects)
            effects.increment(self.metrics.cancellations)
            self.collectEffects(&core, now: now, effects: &effects)
        }
        self.applyEffects(effects)
    }

    @inlinable
    nonisolated func awaitResolution(_ box: WaiterBox<Resource>) async throws -> AcquiredResource<Resource> {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                box.install(continuation)
            }
        } onCancel: {
            box.cancel()
        }
    }

    /// How long a caller may wait before `run()` starts until the pool warns that `run()` is missing, in real time.
    ///
    /// The documented pattern (`group.addTask { try await pool.run() }`, then an acquire at once) often acquires
    /// before the task running `run()` has been scheduled; that is not worth a warning, a `run()` that never comes
    /// is. Real time, not the pool's clock: without `run()` nothing moves an injected clock's timers anyway, and a
    /// diagnostic must not add sleeps that a test observing the pool's timers would see.
    static var runStartGracePeriod: Duration { .seconds(1) }

    /// Waits for a grant as `awaitResolution` does, for a waiter that queued before `run()` started.
    ///
    /// The waiter's deadline is a timer of `run()`, which may never come. So a watch task (see
    /// `watchWaiterBeforeRun`) ends the wait at the deadline and warns if `run()` is still missing after
    /// ``runStartGracePeriod``. It is cancelled as soon as the wait ends, or when `run()` starts, which then times
    /// the deadline itself. Only waits that begin before `run()` pay for it.
    @usableFromInline
    nonisolated func awaitResolutionBeforeRun(_ box: WaiterBox<Resource>) async throws -> AcquiredResource<Resource> {
        let watch = Task { await self.watchWaiterBeforeRun(deadline: box.deadline) }
        let watched = self.state.withLock { core -> Bool in
            guard case .notStarted = core.runPhase else { return false }
            core.preRunWatches[box.id] = watch
            return true
        }
        if !watched { watch.cancel() }
        defer {
            self.state.withLock { _ = $0.preRunWatches.removeValue(forKey: box.id) }
            watch.cancel()
        }
        return try await self.awaitResolution(box)
    }

    /// The watch of a waiter that queued before `run()` started (see `awaitResolutionBeforeRun`); returns when
    /// cancelled.
    nonisolated func watchWaiterBeforeRun(deadline: Duration?) async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await ContinuousClock().sleep(for: Self.runStartGracePeriod)
                } catch {
                    return
                }
                self.warnIfRunNotStarted()
            }
            guard let deadline else { return }
            group.addTask {
                guard await self.sleepOnPoolClock(until: deadline) else { return }
                // 1. `run()` started meanwhile: its own timer fires for this deadline too; the second event finds
                //    the waiter gone (or not yet due) and changes nothing.
                self.timerFired()
                self.warnIfRunNotStarted()
            }
        }
    }

    /// Sleeps on the pool's clock until `instant` (a duration since the pool's epoch); `false` when cancelled.
    nonisolated func sleepOnPoolClock(until instant: Duration) async -> Bool {
        do {
            try await self.clock.sleep(until: self.epoch.advanced(by: instant), tolerance: nil)
            return true
        } catch {
            return false
        }
    }

    nonisolated func warnIfRunNotStarted() {
        let warn = self.state.withLock { core -> Bool in
            guard case .notStarted = core.runPhase, !core.warnedNotRunning else { return false }
            core.warnedNotRunning = true
            return true
        }
        if warn {
            self.logger.warning(
                """
                a caller has waited \(Self.runStartGracePeriod) for a resource but run() has not started: nothing \
                is created or closed until it runs (start it in a task, e.g. group.addTask { try await pool.run() })
                """
            )
        }
    }

    /// Counts a request turned away at once, and returns its error.
    @usableFromInline
    nonisolated func countRejection(
        _ core: inout PoolCore<Resource>,
        _ reason: PoolStateMachine.AcquireFailure,
        now: Duration,
        effects: inout PoolEffects<Resource>
    ) -> ResourcePoolError {
        core.totals.rejections += 1
        effects.increment(self.metrics.rejections[reason])
        return self.acquireError(for: reason, core, waited: .zero, now: now)
    }

    /// The error of an acquire that ends without a lease, turned away at once or failed after waiting `waited`: the
    /// one place each error is worded.
    nonisolated func acquireError(
        for failure: PoolStateMachine.AcquireFailure,
        _ core: borrowing PoolCore<Resource>,
        waited: Duration,
        now: Duration
    ) -> ResourcePoolError {
        switch failure {
        case .tooManyWaiters:
            return ResourcePoolError(
                .tooManyWaiters,
                message: "the pool '\(self.configuration.name)' already has \(core.machine.waiters.count) waiters "
                    + "(maximumWaiters); the request was shed, retry later. \(self.poolFigures(core))"
            )
        case .circuitBreakerOpen:
            return ResourcePoolError(
                .circuitBreakerOpen,
                message: "the pool '\(self.configuration.name)' cannot create resources "
                    + "(\(core.machine.creation.consecutiveFailures) consecutive failures) and has none open; "
                    + "check the underlying error and the resource's availability",
                underlying: core.lastCreationError
            )
        case .shuttingDown:
            return ResourcePoolError(
                .shutDown,
                message: "the pool '\(self.configuration.name)' is shutting down or shut down"
            )
        case .timedOut:
            return self.timeoutError(core, waited: waited, now: now)
        }
    }

    /// The pool's figures, for error messages: they tell a leak (everything leased for long) from an undersized pool.
    nonisolated func poolFigures(_ core: borrowing PoolCore<Resource>) -> String {
        "(leased \(core.machine.counts.leased), idle \(core.machine.idle.count), creating \(core.machine.counts.creating), "
            + "waiting \(core.machine.waiters.count), maximum \(self.configuration.maximumSize))"
    }

    /// Runs the before-lease hook in the acquiring task. On failure the resource is discarded and `false` returned.
    @usableFromInline
    nonisolated func runBeforeLeaseHook(
        _ acquired: AcquiredResource<Resource>,
        site: AcquireSite,
        hook: @Sendable (Resource, ResourceValidationContext) async throws -> Bool
    ) async -> Bool {
        let grant = acquired.grant
        let context = ResourceValidationContext(
            idleDuration: grant.idleDuration,
            age: grant.age,
            useCount: grant.useCount,
            validationRequested: grant.validationRequested
        )
        var valid = false
        do {
            valid = try await hook(acquired.entry.resource, context)
            if !valid {
                self.logger.debug(
                    "resource failed validation; replacing it",
                    metadata: [LogKey.resourceID: "\(acquired.entry.id)"]
                )
            }
        } catch {
            self.metrics.hookFailures[.beforeLease]?.increment()
            self.logger.warning(
                "before-lease hook threw; replacing the resource",
                metadata: [LogKey.resourceID: "\(acquired.entry.id)", LogKey.error: "\(error)"]
            )
        }
        if valid { return true }
        self.metrics.validationFailures.increment()
        await self.replaceAfterFailedValidation(slot: acquired.entry.slot)
        return false
    }

    nonisolated func replaceAfterFailedValidation(slot: Int) async {
        let now = self.timeSinceEpoch()
        var effects = PoolEffects<Resource>()
        let orphans = self.state.withLock { core -> [@Sendable () async -> Void]? in
            core.validationFailed(slot: slot, now: now)
            self.collectEffects(&core, now: now, effects: &effects)
            return core.orphanJobs.isEmpty ? nil : core.takeOrphanJobs()
        }
        self.applyEffects(effects)
        if let orphans {
            for job in orphans { await job() }
        }
    }

    @usableFromInline
    nonisolated func runAfterReleaseHook(
        _ hook: @Sendable (Resource, ResourceReleaseContext) async throws -> ResourceReleaseDecision,
        entry: PooledResource<Resource>,
        context: ResourceReleaseContext
    ) async -> ResourceReleaseDecision {
        do {
            return try await hook(entry.resource, context)
        } catch {
            self.metrics.hookFailures[.afterRelease]?.increment()
            self.logger.warning(
                "after-release hook threw; discarding the resource",
                metadata: [
                    LogKey.resourceID: "\(entry.id)",
                    LogKey.leaseSite: "\(context.acquireSite)",
                    LogKey.error: "\(error)",
                ]
            )
            self.countHookFailure()
            return .discard
        }
    }

    nonisolated func countHookFailure() {
        self.state.withLock { $0.totals.hookFailures += 1 }
        self.observation.stateChanged()
    }

    /// A lease was dropped without release: count, log, close and replace.
    nonisolated func reportDroppedLease(_ entry: PooledResource<Resource>, site: AcquireSite) async {
        if let orphans = self.recordDroppedLease(entry, site: site) {
            for job in orphans { await job() }
        }
    }

    nonisolated func recordDroppedLease(
        _ entry: PooledResource<Resource>,
        site: AcquireSite
    ) -> [@Sendable () async -> Void]? {
        let now = self.timeSinceEpoch()
        var effects = PoolEffects<Resource>()
        let orphans = self.state.withLock { core -> [@Sendable () async -> Void]? in
            let heldFor = core.machine.leaseLeaked(slot: entry.slot, now: now)
            core.totals.leaksDropped += 1
            core.recordLeak(site: site, dropped: true)
            core.window.recordHold(nanoseconds: heldFor.clampedNanoseconds, now: now)
            effects.increment(self.metrics.leaksDropped)
            effects.log(.leaseDropped(resourceID: entry.id, site: site, heldFor: heldFor))
            self.collectEffects(&core, now: now, effects: &effects)
            return core.orphanJobs.isEmpty ? nil : core.takeOrphanJobs()
        }
        self.applyEffects(effects)
        return orphans
    }
}
