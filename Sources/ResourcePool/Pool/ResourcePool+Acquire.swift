import CoreMetrics
import DequeModule
import Logging

/// What `_acquire` hands back: the resource, what the state machine said about it, and the deadline to reuse if the
/// resource fails validation and the caller must try again.
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
    func _acquire(
        timeout: Duration?,
        deadline: Duration?,
        site: AcquireSite,
        retry: Bool
    ) async throws -> AcquiredResource<Resource> {
        let now = self._now()
        var effectiveDeadline = deadline
        if effectiveDeadline == nil, let timeout = timeout ?? self.defaultAcquireTimeout {
            effectiveDeadline = now + timeout
        }
        let outcome = self.core.leaseRequested(
            now: now,
            deadline: effectiveDeadline,
            site: site,
            retry: retry,
            metrics: self.metrics
        )
        switch outcome {
        case .leased(let entry, let grant):
            if self.core.hasPendingActions { self._afterEvent(now: now) }
            return AcquiredResource(entry: entry, grant: grant, deadline: effectiveDeadline)
        case .wait(let id):
            let grant = try await self._wait(id: id, site: site, enqueuedAt: now)
            return AcquiredResource(entry: self.core.entries[grant.slot]!, grant: grant, deadline: effectiveDeadline)
        case .reject(let reason):
            self._afterEvent(now: now)
            throw self._rejected(reason)
        }
    }

    /// Ends a lease in the state machine.
    ///
    /// - Returns: background work to run in the caller's task because `run()` has already ended (almost always
    ///   `nil`).
    @inlinable
    func _release(
        slot: Int,
        discardReason: PoolStateMachine.EvictionReason?,
        validateIdle: Bool
    ) -> [@Sendable () async -> Void]? {
        let now = self._now()
        self.core.leaseReleased(
            slot: slot,
            now: now,
            discardReason: discardReason,
            validateIdle: validateIdle,
            metrics: self.metrics
        )
        if self.core.hasPendingActions { return self._afterEventReturningOrphans(now: now) }
        return nil
    }

    /// Returns a lease: runs the after-release hook in the caller's task, then hands the resource back.
    @inlinable @inline(__always)
    nonisolated func _returnLease(
        _ entry: PooledResource<Resource>,
        site: AcquireSite,
        markedBroken: Bool,
        error: (any Error)?
    ) async {
        var discardReason: PoolStateMachine.EvictionReason? = markedBroken ? .discarded : nil
        var validateIdle = false
        if let hook = self.hooks.afterRelease {
            let decision = await self._runAfterReleaseHook(
                hook,
                entry: entry,
                context: ResourceReleaseContext(acquireSite: site, markedBroken: markedBroken, error: error)
            )
            if !decision.keep { discardReason = .discarded }
            validateIdle = decision.validateIdle
        }
        if let orphans = await self._release(
            slot: entry.slot,
            discardReason: discardReason,
            validateIdle: validateIdle
        ) {
            for job in orphans { await job() }
        }
    }

    /// Carries out the state machine's pending actions and brings the count gauges up to date.
    ///
    /// - Parameter now: the time of the event, if the caller has it (saves a clock read).
    @usableFromInline
    func _afterEvent(now: Duration? = nil) {
        if self.core.hasPendingActions { self._performActions(now: now) }
        self.core.recordCounts(self.metrics)
    }
}

// MARK: - The slow paths

extension ResourcePool {
    @usableFromInline
    func _afterEventReturningOrphans(now: Duration) -> [@Sendable () async -> Void]? {
        self._afterEvent(now: now)
        return self.orphanJobs.isEmpty ? nil : self._takeOrphanJobs()
    }

    @usableFromInline
    func _takeOrphanJobs() -> [@Sendable () async -> Void] {
        let jobs = self.orphanJobs
        self.orphanJobs = []
        return jobs
    }

    /// Waits in the queue until the state machine resumes or fails this waiter, or the task is cancelled.
    @usableFromInline
    func _wait(id: PoolStateMachine.WaiterID, site: AcquireSite, enqueuedAt: Duration) async throws
        -> PoolStateMachine.Grant
    {
        if case .notStarted = self.runPhase, !self.warnedNotRunning {
            self.warnedNotRunning = true
            self.logger.warning("a caller is waiting for a resource but run() has not started: nothing is created")
        }
        let box = WaiterBox(site: site, enqueuedAt: enqueuedAt)
        self.waiterBoxes[id] = box
        self._afterEvent(now: enqueuedAt)
        do {
            let grant = try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { continuation in
                    box.install(continuation)
                }
            } onCancel: {
                box.cancel()
            }
            return grant
        } catch let error as CancellationError {
            self.waiterBoxes[id] = nil
            // Scenario: the state machine may already have picked this waiter, and the hand-off failed because the
            // cancellation came first; then it is no longer queued and its resource went back into service
            // (`handoffFailed`). Either way the caller was cancelled while waiting, and is counted once, here.
            _ = self.core.machine.waiterCancelled(id)
            self.core.totals.cancellations += 1
            self.metrics.cancellations.increment()
            let now = self._now()
            self.core.window.recordWait(now - enqueuedAt, now: now)
            self.metrics.waitTime.recordNanoseconds(Int64(clamping: (now - enqueuedAt).clampedNanoseconds))
            self._afterEvent(now: now)
            throw error
        }
    }

    @usableFromInline
    func _rejected(_ reason: PoolStateMachine.RejectionReason) -> ResourcePoolError {
        self.core.totals.rejections += 1
        self.metrics.rejections[reason]?.increment()
        switch reason {
        case .tooManyWaiters:
            return ResourcePoolError(
                .tooManyWaiters,
                message: "the pool '\(self.configuration.name)' already has \(self.core.machine.waiters.count) waiters "
                    + "(maximumWaiters); the request was shed, retry later. \(self._figures())"
            )
        case .circuitBreakerOpen:
            return self._circuitBreakerError()
        case .shuttingDown:
            return ResourcePoolError(
                .shutDown,
                message: "the pool '\(self.configuration.name)' is shutting down or shut down"
            )
        }
    }

    func _circuitBreakerError() -> ResourcePoolError {
        ResourcePoolError(
            .circuitBreakerOpen,
            message: "the pool '\(self.configuration.name)' cannot create resources "
                + "(\(self.core.machine.creation.consecutiveFailures) consecutive failures) and has none open; "
                + "check the underlying error and the resource's availability",
            underlying: self.lastCreationError
        )
    }

    /// The pool's figures, for error messages: they tell a leak (everything leased for long) from an undersized pool.
    func _figures() -> String {
        "(leased \(self.core.machine.counts.leased), idle \(self.core.machine.idle.count), creating \(self.core.machine.counts.creating), "
            + "waiting \(self.core.machine.waiters.count), maximum \(self.configuration.maximumSize))"
    }

    /// Runs the before-lease hook in the acquiring task. On failure the resource is discarded and `false` returned.
    @usableFromInline
    nonisolated func _validate(
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
        await self._validationFailed(slot: acquired.entry.slot)
        return false
    }

    func _validationFailed(slot: Int) async {
        self.core.totals.validationFailures += 1
        // The lease never reached the caller: undo its acquisition count so totals stay honest.
        self.core.totals.acquisitions -= 1
        if let orphans = self._release(slot: slot, discardReason: .validationFailed, validateIdle: false) {
            for job in orphans { await job() }
        }
    }

    @usableFromInline
    nonisolated func _runAfterReleaseHook(
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
            await self._countHookFailure()
            return .discard
        }
    }

    func _countHookFailure() {
        self.core.totals.hookFailures += 1
    }

    /// A lease was dropped without release: count, log, close and replace.
    nonisolated func _leaseDropped(_ entry: PooledResource<Resource>, site: AcquireSite) async {
        self.metrics.leaksDropped.increment()
        if let orphans = await self._recordLeak(entry, site: site) {
            for job in orphans { await job() }
        }
    }

    func _recordLeak(_ entry: PooledResource<Resource>, site: AcquireSite) -> [@Sendable () async -> Void]? {
        let now = self._now()
        let heldFor = self.core.machine.leaseLeaked(slot: entry.slot, now: now)
        self.core.totals.leaksDropped += 1
        self.core.window.recordHold(heldFor, now: now)
        self.logger.warning(
            "a lease was dropped without release (leak): its resource is closed and replaced",
            metadata: [
                LogKey.resourceID: "\(entry.id)",
                LogKey.leaseSite: "\(site)",
                LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
            ]
        )
        self._afterEvent(now: now)
        return self.orphanJobs.isEmpty ? nil : self._takeOrphanJobs()
    }
}
