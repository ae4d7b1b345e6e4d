import CoreMetrics
import DequeModule
import Logging
import Synchronization

// Carrying out the state machine's actions, and the events that background work reports back.
extension ResourcePool {
    /// Carries out every pending action, with the lock held. Waiters to resume are collected in `resumes`, for the
    /// caller to resume after unlocking; background work is queued for `run()`.
    ///
    /// - Parameter now: the time of the event that produced the actions, if the caller has it (saves a clock read).
    @usableFromInline
    nonisolated func _performActions(_ core: inout PoolCore<Resource>, now: Duration?, resumes: inout PendingResumes) {
        var now = now
        while let action = core.machine.popAction() {
            self._perform(action, core: &core, now: &now, resumes: &resumes)
        }
    }

    private nonisolated func _perform(
        _ action: PoolStateMachine.Action,
        core: inout PoolCore<Resource>,
        now cachedNow: inout Duration?,
        resumes: inout PendingResumes
    ) {
        func currentTime() -> Duration {
            if let cachedNow { return cachedNow }
            let now = self._now()
            cachedNow = now
            return now
        }
        switch action {
        case .resume(let id, let grant):
            guard let box = core.waiterBoxes.removeValue(forKey: id) else {
                preconditionFailure("the state machine resumed an unknown waiter \(id)")
            }
            let now = currentTime()
            if let resume = box.claim(.success(grant)) {
                core.sites[grant.slot] = box.site
                core.totals.acquisitions += 1
                let waited = now - box.enqueuedAt
                core.window.recordGrantedWait(waited, now: now)
                self.metrics.waitTime.recordNanoseconds(Int64(clamping: waited.clampedNanoseconds))
                resumes.append(resume)
            } else {
                // Scenario: the waiter's task was cancelled after the state machine picked it but before this
                // hand-off. Its cancellation handler already resumed it; the resource goes back into service.
                core.machine.handoffFailed(slot: grant.slot, now: now)
            }

        case .fail(let id, let failure):
            guard let box = core.waiterBoxes.removeValue(forKey: id) else {
                preconditionFailure("the state machine failed an unknown waiter \(id)")
            }
            let now = currentTime()
            let waited = now - box.enqueuedAt
            let error: ResourcePoolError
            switch failure {
            case .timedOut:
                error = self._timeoutError(core, waited: waited, now: now)
            case .circuitBreakerOpen:
                error = self._circuitBreakerError(core)
            case .shuttingDown:
                error = ResourcePoolError(
                    .shutDown,
                    message: "the pool '\(self.configuration.name)' is shutting down"
                )
            }
            if let resume = box.claim(.failure(error)) {
                resumes.append(resume)
                switch failure {
                case .timedOut:
                    core.totals.timeouts += 1
                    core.window.recordTimeout(now: now)
                    self.metrics.timeouts.increment()
                    self.logger.debug(
                        "acquire timed out",
                        metadata: [LogKey.leaseSite: "\(box.site)", "wait_ms": "\(waited.clampedNanoseconds / 1_000_000)"]
                    )
                case .circuitBreakerOpen, .shuttingDown:
                    break
                }
                core.window.recordWait(waited, now: now)
                self.metrics.waitTime.recordNanoseconds(Int64(clamping: waited.clampedNanoseconds))
            }

        case .create(let slot):
            self._startCreation(&core, slot: slot)

        case .close(let slot, let reason):
            self._startClose(&core, slot: slot, reason: reason)

        case .keepAlive(let slot):
            guard let entry = core.entries[slot], let hook = self.hooks.keepAlive else {
                preconditionFailure("keep-alive for slot \(slot) without a resource or a hook")
            }
            self._submit(&core) { [self] in
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
                self._keepAliveFinished(slot: slot, succeeded: succeeded)
            }

        case .scheduleWakeup(let instant):
            let deadline = self.epoch.advanced(by: instant)
            let clock = self.clock
            self._submit(&core) { [self] in
                do {
                    try await clock.sleep(until: deadline, tolerance: nil)
                } catch {
                    return  // cancelled: run() is ending
                }
                self._timerFired()
            }

        case .reportLeakSuspected(let slot, let heldFor):
            core.totals.leaksHeldTooLong += 1
            core.recordLeak(site: core.sites[slot], dropped: false)
            self.metrics.leaksHeldTooLong.increment()
            self.logger.warning(
                "a lease is held longer than the leak threshold",
                metadata: [
                    LogKey.resourceID: "\(core.entries[slot]?.id ?? -1)",
                    LogKey.leaseSite: "\(core.sites[slot])",
                    LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
                ]
            )

        case .reportLeakRecovered(let slot, let heldFor):
            core.totals.leaksRecovered += 1
            self.metrics.leaksRecovered.increment()
            self.logger.info(
                "a lease reported as held too long came back",
                metadata: [
                    LogKey.resourceID: "\(core.entries[slot]?.id ?? -1)",
                    LogKey.leaseSite: "\(core.sites[slot])",
                    LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
                ]
            )

        case .circuitBreakerOpened:
            self.metrics.circuitBreakerOpen.record(1)
            self.logger.error(
                "circuit breaker opened: creating resources keeps failing and none is open; acquires fail fast",
                metadata: [LogKey.error: "\(core.lastCreationError.map { String(describing: $0) } ?? "unknown")"]
            )

        case .circuitBreakerClosed:
            self.metrics.circuitBreakerOpen.record(0)
            self.logger.info("circuit breaker closed: a resource was created")

        case .shutdownCompleted:
            core.runPhase = .finished
            self.jobs.push(.finish)
            self.logger.debug("shutdown completed")
        }
    }

    /// The error of a waiter whose deadline passed: it says why no resource came, from the pool's state.
    nonisolated func _timeoutError(
        _ core: borrowing PoolCore<Resource>,
        waited: Duration,
        now: Duration
    ) -> ResourcePoolError {
        let prefix = "no resource became available in the pool '\(self.configuration.name)' within \(waited)"
        if case .notStarted = core.runPhase {
            return ResourcePoolError(
                .timeout,
                message: prefix + ": run() has not started, so nothing is created; run the pool in a task "
                    + "(e.g. group.addTask { try await pool.run() }) before acquiring. " + self._figures(core)
            )
        }
        // A creation in flight for most of the wait (it started with it, or before) that has not finished: the
        // resource's backend is slow or not answering (a connect that hangs), not the pool's size. Say so.
        if let oldestStart = core.creationStartedAt.values.min(), now - oldestStart >= waited / 2 {
            var message = prefix + ": a new resource is being created and has not finished after "
                + "\(now - oldestStart) (\(core.creationStartedAt.count) creation(s) in progress, none answered "
                + "yet); check that the resource's backend answers"
            if let lastError = core.lastCreationError {
                message += "; the last failed creation: \(lastError)"
            }
            return ResourcePoolError(
                .timeout,
                message: message + ". " + self._figures(core),
                underlying: core.lastCreationError
            )
        }
        return ResourcePoolError(
            .timeout,
            message: prefix + "; the pool is undersized or leases are held too long (see stats()). "
                + self._figures(core)
        )
    }

    /// Runs background work in a child task of `run()`, or, once `run()` has ended, hands it to the task that
    /// caused it (see `orphanJobs`).
    nonisolated func _submit(_ core: inout PoolCore<Resource>, _ job: @escaping @Sendable () async -> Void) {
        switch core.runPhase {
        case .notStarted, .running:
            self.jobs.push(.job(job))
        case .finished:
            core.orphanJobs.append(job)
        }
    }

    private nonisolated func _startCreation(_ core: inout PoolCore<Resource>, slot: Int) {
        let id = core.nextResourceID
        core.nextResourceID += 1
        core.creationStartedAt[slot] = self._now()
        let factory = self.factory
        let afterCreate = self.hooks.afterCreate
        let clock = self.clock
        self._submit(&core) { [self] in
            let start = clock.now
            let resource: Resource
            do {
                resource = try await factory.create()
            } catch {
                self._creationFailed(slot: slot, error: error)
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
                    self._countHookFailure()
                    self._creationFailed(slot: slot, error: error)
                    return
                }
            }
            let duration = start.duration(to: clock.now)
            self.metrics.createTime.recordNanoseconds(Int64(clamping: duration.clampedNanoseconds))
            self._created(PooledResource(resource: resource, slot: slot, id: id))
        }
    }

    private nonisolated func _startClose(_ core: inout PoolCore<Resource>, slot: Int, reason: PoolStateMachine.EvictionReason) {
        guard let entry = core.entries[slot] else {
            preconditionFailure("close of slot \(slot) without a resource")
        }
        core.entries[slot] = nil
        core.totals.evictions[reason.rawValue, default: 0] += 1
        self.metrics.evictions[reason]?.increment()
        self.logger.debug(
            "closing resource",
            metadata: [LogKey.resourceID: "\(entry.id)", LogKey.reason: "\(reason.rawValue)"]
        )
        let factory = self.factory
        let beforeClose = self.hooks.beforeClose
        self._submit(&core) { [self] in
            if let beforeClose {
                do {
                    try await beforeClose(entry.resource)
                } catch {
                    self.metrics.hookFailures[.beforeClose]?.increment()
                    self.logger.warning(
                        "before-close hook threw; closing anyway",
                        metadata: [LogKey.resourceID: "\(entry.id)", LogKey.error: "\(error)"]
                    )
                    self._countHookFailure()
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
            self._closed(slot: slot)
        }
    }

    // MARK: Events reported by background work

    /// Applies an event to the state under the lock, carries out its actions, and resumes the waiters it served.
    nonisolated func _handle(_ event: (inout PoolCore<Resource>, Duration) -> Void) {
        let now = self._now()
        let resumes = self.state.withLock { core in
            event(&core, now)
            return self._afterEvent(&core, now: now)
        }
        resumes.resumeAll()
    }

    nonisolated func _timerFired() {
        self._handle { core, now in core.machine.timerFired(now: now) }
    }

    nonisolated func _created(_ entry: PooledResource<Resource>) {
        self.logger.debug("created resource", metadata: [LogKey.resourceID: "\(entry.id)"])
        let lifetimeJitter = self.jitter.next()
        self._handle { core, now in
            core.entries[entry.slot] = entry
            core.creationStartedAt[entry.slot] = nil
            core.totals.creations += 1
            core.machine.resourceCreated(slot: entry.slot, now: now, lifetimeJitter: lifetimeJitter)
        }
    }

    nonisolated func _creationFailed(slot: Int, error: any Error) {
        self.metrics.creationFailures.increment()
        let backoffJitter = self.jitter.next()
        let permanent = (error as? any PermanentCreationFailure)?.isPermanent ?? false
        self._handle { core, now in
            core.lastCreationError = error
            core.totals.creationFailures += 1
            core.creationStartedAt[slot] = nil
            core.machine.creationFailed(slot: slot, now: now, backoffJitter: backoffJitter, permanent: permanent)
            // Logged before the actions this failure causes (such as the circuit breaker opening).
            self.logger.warning(
                "creating a resource failed",
                metadata: [
                    LogKey.error: "\(error)",
                    LogKey.attempt: "\(core.machine.creation.consecutiveFailures)",
                ]
            )
        }
    }

    nonisolated func _closed(slot: Int) {
        self._handle { core, now in core.machine.resourceClosed(slot: slot, now: now) }
    }

    nonisolated func _keepAliveFinished(slot: Int, succeeded: Bool) {
        self._handle { core, now in core.machine.keepAliveFinished(slot: slot, now: now, succeeded: succeeded) }
    }
}
