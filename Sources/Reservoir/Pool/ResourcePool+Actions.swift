import CoreMetrics
import DequeModule
import Logging
import Synchronization

// Carrying out the state machine's actions, and the events that background work reports back.
extension ResourcePool {
    /// Turns every pending action into state changes and effects, with the lock held. Nothing here resumes, logs,
    /// records a metric or queues work: that is collected in `effects`, for the caller to apply after unlocking.
    ///
    /// - Parameter now: the time of the event that produced the actions, if the caller has it (saves a clock read).
    ///
    /// Inlinable, with the hand-off to a waiter inline: that is the contended path (every release that serves a
    /// waiter), and as generic code it paid runtime metadata lookups for the effects value on every call. The rarer
    /// actions go to ``performRareAction(_:core:now:effects:)``.
    @inlinable
    nonisolated func performActions(
        _ core: inout PoolCore<Resource>,
        now: Duration?,
        effects: inout PoolEffects<Resource>
    ) {
        var now = now
        while let action = core.machine.popAction() {
            if case .resume(_, let grant, let payload) = action {
                let time = now ?? self.timeSinceEpoch()
                now = time
                self.handOff(to: self.waiterBox(payload), grant: grant, core: &core, now: time, effects: &effects)
            } else {
                self.performRareAction(action, core: &core, now: &now, effects: &effects)
            }
        }
    }

    /// The hand-off box that `enqueueWaiter` attached to a waiter's queue entry, from the action that serves or fails
    /// it.
    @inlinable
    nonisolated func waiterBox(_ payload: PoolStateMachine.WaiterPayload?) -> WaiterBox<Resource> {
        // Every waiter the shell queues gets its box in the same locked section (`enqueueWaiter`), and only the shell
        // queues waiters, so the payload is there and is this pool's box type: no check on the hot path.
        unsafeDowncast(payload.unsafelyUnwrapped.object, to: WaiterBox<Resource>.self)
    }

    /// Hands a resource to the waiter the state machine picked.
    @inlinable
    nonisolated func handOff(
        to box: WaiterBox<Resource>,
        grant: PoolStateMachine.Grant,
        core: inout PoolCore<Resource>,
        now: Duration,
        effects: inout PoolEffects<Resource>
    ) {
        // The box's own lock is the one lock taken inside the pool's: it runs no user code and is contended only by
        // the waiter's cancellation handler, and the claim must be decided in the same locked section as the
        // hand-off (a failed claim puts the resource back at once).
        let acquired = AcquiredResource(
            entry: core.entries[grant.slot].unsafelyUnwrapped,
            grant: grant,
            deadline: box.deadline
        )
        if let resume = box.claim(.success(acquired)) {
            let waited = (now - box.enqueuedAt).clampedNanoseconds
            core.leaseStarted(
                slot: grant.slot,
                site: box.site,
                waitedNanoseconds: waited,
                now: now,
                effects: &effects
            )
            effects.resumes.append(resume)
        } else {
            // Scenario: the waiter's task was cancelled after the state machine picked it but before this hand-off.
            // Its cancellation handler already resumed it; the resource goes back into service.
            core.machine.handoffFailed(slot: grant.slot, now: now)
        }
    }

    @usableFromInline
    nonisolated func performRareAction(
        _ action: PoolStateMachine.Action,
        core: inout PoolCore<Resource>,
        now cachedNow: inout Duration?,
        effects: inout PoolEffects<Resource>
    ) {
        func currentTime() -> Duration {
            if let cachedNow { return cachedNow }
            let now = self.timeSinceEpoch()
            cachedNow = now
            return now
        }
        switch action {
        case .resume(_, let grant, let payload):
            let box = self.waiterBox(payload)
            self.handOff(to: box, grant: grant, core: &core, now: currentTime(), effects: &effects)

        case .fail(_, let failure, let payload):
            let box = self.waiterBox(payload)
            let now = currentTime()
            let waited = now - box.enqueuedAt
            let error = self.acquireError(for: failure, core, waited: waited, now: now)
            if let resume = box.claim(.failure(error)) {
                effects.resumes.append(resume)
                switch failure {
                case .timedOut:
                    core.totals.timeouts += 1
                    core.window.recordTimeout(now: now)
                    effects.increment(self.metrics.timeouts)
                    effects.log(.acquireTimedOut(site: box.site, waited: waited))
                case .circuitBreakerOpen, .shuttingDown, .tooManyWaiters:
                    break
                }
                core.waitEnded(waited: waited, now: now, effects: &effects)
            }

        case .create(let slot):
            self.startCreation(&core, slot: slot, now: currentTime(), effects: &effects)

        case .close(let slot, let reason):
            self.startClose(&core, slot: slot, reason: reason, effects: &effects)

        case .keepAlive(let slot):
            guard let entry = core.entries[slot], let hook = self.hooks.keepAlive else {
                preconditionFailure("keep-alive for slot \(slot) without a resource or a hook")
            }
            self.submitJob(&core, effects: &effects) { [self] in
                var succeeded = true
                do {
                    try await hook(entry.resource)
                } catch {
                    succeeded = false
                    self.metrics.hookFailures[.keepAlive]?.increment()
                    self.logger.warning(
                        "keep-alive check failed; closing the resource",
                        metadata: [LogKey.resourceID: "\(entry.id)", LogKey.error: "\(error)"]
                    )
                }
                self.keepAliveFinished(slot: slot, succeeded: succeeded)
            }

        case .scheduleWakeup(let instant):
            let deadline = self.epoch.advanced(by: instant)
            let clock = self.clock
            self.submitJob(&core, effects: &effects) { [self] in
                do {
                    try await clock.sleep(until: deadline, tolerance: nil)
                } catch {
                    return  // cancelled: run() is ending
                }
                self.timerFired()
            }

        case .reportLeakSuspected(let slot, let heldFor):
            core.totals.leaksHeldTooLong += 1
            core.recordLeak(site: core.sites[slot], dropped: false)
            effects.increment(self.metrics.leaksHeldTooLong)
            effects.log(
                .leakSuspected(resourceID: core.entries[slot]?.id ?? -1, site: core.sites[slot], heldFor: heldFor)
            )

        case .reportLeakRecovered(let slot, let heldFor):
            core.totals.leaksRecovered += 1
            effects.increment(self.metrics.leaksRecovered)
            effects.log(
                .leakRecovered(resourceID: core.entries[slot]?.id ?? -1, site: core.sites[slot], heldFor: heldFor)
            )

        case .circuitBreakerOpened:
            if self.metrics.circuitBreakerOpen.publish(1) { effects.changedGauges.insert(.circuitBreakerOpen) }
            effects.log(.circuitBreakerOpened(error: core.lastCreationError))

        case .circuitBreakerClosed:
            if self.metrics.circuitBreakerOpen.publish(0) { effects.changedGauges.insert(.circuitBreakerOpen) }
            effects.log(.circuitBreakerClosed)

        case .shutdownCompleted:
            core.runPhase = .finished
            effects.submit(.finish)
            effects.log(.shutdownCompleted)
        }
    }

    /// The error of a waiter whose deadline passed: it says why no resource came, from the pool's state.
    nonisolated func timeoutError(
        _ core: borrowing PoolCore<Resource>,
        waited: Duration,
        now: Duration
    ) -> ResourcePoolError {
        let prefix = "no resource became available in the pool '\(self.configuration.name)' within \(waited)"
        if case .notStarted = core.runPhase {
            return ResourcePoolError(
                .timeout,
                message: prefix + ": run() has not started, so nothing is created; run the pool in a task "
                    + "(e.g. group.addTask { try await pool.run() }) before acquiring. " + self.poolFigures(core)
            )
        }
        // A creation in flight for most of the wait (it started with it, or before) that has not finished: the
        // resource's backend is slow or not answering (a connect that hangs), not the pool's size. Say so.
        if let oldestStart = core.creationStartedAt.values.min(), now - oldestStart >= waited / 2 {
            var message = prefix + ": a new resource is being created and has not finished after "
                + "\(now - oldestStart) (\(core.creationStartedAt.count) creation(s) in progress, none answered "
                + "yet); check that the resource's backend answers"
            if let lastError = core.lastCreationErrorDescription {
                message += "; the last failed creation: \(lastError)"
            }
            return ResourcePoolError(
                .timeout,
                message: message + ". " + self.poolFigures(core),
                underlying: core.lastCreationError
            )
        }
        return ResourcePoolError(
            .timeout,
            message: prefix + "; the pool is undersized or leases are held too long (see statistics). "
                + self.poolFigures(core)
        )
    }

    /// Runs background work in a child task of `run()` (queued after unlocking), or, once `run()` has ended, hands
    /// it to the task that caused it (see `orphanJobs`).
    ///
    /// Queued after unlocking, a job may reach the queue after a later section's `.finish`; that is harmless: the
    /// state machine completes shutdown only when no creation, close or keep-alive is in flight, so such a job can
    /// only be a timer, which `run()` would have cancelled anyway.
    nonisolated func submitJob(
        _ core: inout PoolCore<Resource>,
        effects: inout PoolEffects<Resource>,
        _ job: @escaping @Sendable () async -> Void
    ) {
        switch core.runPhase {
        case .notStarted, .running:
            effects.submit(.job(job))
        case .finished:
            core.orphanJobs.append(job)
        }
    }

    private nonisolated func startCreation(
        _ core: inout PoolCore<Resource>,
        slot: Int,
        now: Duration,
        effects: inout PoolEffects<Resource>
    ) {
        let id = core.nextResourceID
        core.nextResourceID += 1
        core.creationStartedAt[slot] = now
        let factory = self.factory
        let afterCreate = self.hooks.afterCreate
        let clock = self.clock
        self.submitJob(&core, effects: &effects) { [self] in
            let start = clock.now
            let resource: Resource
            do {
                resource = try await factory.create()
            } catch {
                self.creationFailed(slot: slot, error: error)
                return
            }
            if let afterCreate {
                do {
                    try await afterCreate(resource)
                } catch {
                    self.metrics.hookFailures[.afterCreate]?.increment()
                    self.logger.warning(
                        "after-create hook threw; closing the new resource",
                        metadata: [LogKey.resourceID: "\(id)", LogKey.error: "\(error)"]
                    )
                    do { try await factory.close(resource) } catch {}
                    self.countHookFailure()
                    self.creationFailed(slot: slot, error: error)
                    return
                }
            }
            let duration = start.duration(to: clock.now)
            self.metrics.createTime.recordNanoseconds(Int64(clamping: duration.clampedNanoseconds))
            self.resourceCreated(PooledResource(resource: resource, slot: slot, id: id))
        }
    }

    private nonisolated func startClose(
        _ core: inout PoolCore<Resource>,
        slot: Int,
        reason: PoolStateMachine.EvictionReason,
        effects: inout PoolEffects<Resource>
    ) {
        guard let entry = core.entries[slot] else {
            preconditionFailure("close of slot \(slot) without a resource")
        }
        core.entries[slot] = nil
        core.totals.evictions[reason.rawValue, default: 0] += 1
        effects.increment(self.metrics.evictions[reason])
        effects.log(.closing(resourceID: entry.id, reason: reason))
        let factory = self.factory
        let beforeClose = self.hooks.beforeClose
        self.submitJob(&core, effects: &effects) { [self] in
            if let beforeClose {
                do {
                    try await beforeClose(entry.resource)
                } catch {
                    self.metrics.hookFailures[.beforeClose]?.increment()
                    self.logger.warning(
                        "before-close hook threw; closing anyway",
                        metadata: [LogKey.resourceID: "\(entry.id)", LogKey.error: "\(error)"]
                    )
                    self.countHookFailure()
                }
            }
            do {
                try await factory.close(entry.resource)
            } catch {
                self.logger.warning(
                    "closing a resource failed; it is forgotten",
                    metadata: [LogKey.resourceID: "\(entry.id)", LogKey.error: "\(error)"]
                )
            }
            self.resourceClosed(slot: slot)
        }
    }

    // MARK: Events reported by background work

    /// Applies an event to the state under the lock, turns its actions into effects, and applies them after
    /// unlocking (resuming the waiters it served).
    nonisolated func handleEvent(_ event: (inout PoolCore<Resource>, Duration, inout PoolEffects<Resource>) -> Void) {
        let now = self.timeSinceEpoch()
        var effects = PoolEffects<Resource>()
        self.state.withLock { core in
            event(&core, now, &effects)
            self.collectEffects(&core, now: now, effects: &effects)
        }
        self.applyEffects(effects)
    }

    nonisolated func timerFired() {
        self.handleEvent { core, now, _ in core.machine.timerFired(now: now) }
    }

    nonisolated func resourceCreated(_ entry: PooledResource<Resource>) {
        self.logger.debug("created resource", metadata: [LogKey.resourceID: "\(entry.id)"])
        let lifetimeJitter = self.jitter.next()
        self.handleEvent { core, now, _ in
            core.entries[entry.slot] = entry
            core.creationStartedAt[entry.slot] = nil
            core.totals.creations += 1
            core.machine.resourceCreated(slot: entry.slot, now: now, lifetimeJitter: lifetimeJitter)
        }
    }

    nonisolated func creationFailed(slot: Int, error: any Error) {
        self.metrics.creationFailures.increment()
        let backoffJitter = self.jitter.next()
        let permanent = (error as? any PermanentCreationFailure)?.isPermanent ?? false
        let errorDescription = String(describing: error)
        self.handleEvent { core, now, effects in
            core.lastCreationError = error
            core.lastCreationErrorDescription = errorDescription
            core.totals.creationFailures += 1
            core.creationStartedAt[slot] = nil
            core.machine.creationFailed(slot: slot, now: now, backoffJitter: backoffJitter, permanent: permanent)
            // Logged before the actions this failure causes (such as the circuit breaker opening).
            effects.log(.creationFailed(error: error, attempt: core.machine.creation.consecutiveFailures))
        }
    }

    nonisolated func resourceClosed(slot: Int) {
        self.handleEvent { core, now, _ in core.machine.resourceClosed(slot: slot, now: now) }
    }

    nonisolated func keepAliveFinished(slot: Int, succeeded: Bool) {
        self.handleEvent { core, now, _ in core.machine.keepAliveFinished(slot: slot, now: now, succeeded: succeeded) }
    }
}
