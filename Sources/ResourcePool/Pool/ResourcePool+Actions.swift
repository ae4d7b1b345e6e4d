import CoreMetrics
import DequeModule
import Logging

// Carrying out the state machine's actions, and the events that background work reports back.
extension ResourcePool {
    /// Carries out every pending action.
    ///
    /// - Parameter now: the time of the event that produced the actions, if the caller has it (saves a clock read).
    @usableFromInline
    func _performActions(now: Duration?) {
        var now = now
        while let action = self.core.machine.popAction() {
            self._perform(action, now: &now)
        }
    }

    private func _perform(_ action: PoolStateMachine.Action, now cachedNow: inout Duration?) {
        func currentTime() -> Duration {
            if let cachedNow { return cachedNow }
            let now = self._now()
            cachedNow = now
            return now
        }
        switch action {
        case .resume(let id, let grant):
            guard let box = self.waiterBoxes.removeValue(forKey: id) else {
                preconditionFailure("the state machine resumed an unknown waiter \(id)")
            }
            let now = currentTime()
            if box.resolve(.success(grant)) {
                self.core.sites[grant.slot] = box.site
                self.core.totals.acquisitions += 1
                let waited = now - box.enqueuedAt
                self.core.window.recordGrantedWait(waited, now: now)
                self.metrics.waitTime.recordNanoseconds(Int64(clamping: waited.clampedNanoseconds))
            } else {
                // Scenario: the waiter's task was cancelled after the state machine picked it but before this
                // hand-off. Its cancellation handler already resumed it; the resource goes back into service.
                self.core.machine.handoffFailed(slot: grant.slot, now: now)
            }

        case .fail(let id, let failure):
            guard let box = self.waiterBoxes.removeValue(forKey: id) else {
                preconditionFailure("the state machine failed an unknown waiter \(id)")
            }
            let now = currentTime()
            let waited = now - box.enqueuedAt
            let error: ResourcePoolError
            switch failure {
            case .timedOut:
                error = ResourcePoolError(
                    .timeout,
                    message: "no resource became available in the pool '\(self.configuration.name)' within "
                        + "\(waited); the pool is undersized or leases are held too long (see stats()). "
                        + self._figures()
                )
            case .circuitBreakerOpen:
                error = self._circuitBreakerError()
            case .shuttingDown:
                error = ResourcePoolError(
                    .shutDown,
                    message: "the pool '\(self.configuration.name)' is shutting down"
                )
            }
            if box.resolve(.failure(error)) {
                switch failure {
                case .timedOut:
                    self.core.totals.timeouts += 1
                    self.core.window.recordTimeout(now: now)
                    self.metrics.timeouts.increment()
                    self.logger.debug(
                        "acquire timed out",
                        metadata: [LogKey.leaseSite: "\(box.site)", "wait_ms": "\(waited.clampedNanoseconds / 1_000_000)"]
                    )
                case .circuitBreakerOpen, .shuttingDown:
                    break
                }
                self.core.window.recordWait(waited, now: now)
                self.metrics.waitTime.recordNanoseconds(Int64(clamping: waited.clampedNanoseconds))
            }

        case .create(let slot):
            self._startCreation(slot: slot)

        case .close(let slot, let reason):
            self._startClose(slot: slot, reason: reason)

        case .keepAlive(let slot):
            guard let entry = self.core.entries[slot], let hook = self.hooks.keepAlive else {
                preconditionFailure("keep-alive for slot \(slot) without a resource or a hook")
            }
            self._submit { [self] in
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
                await self._keepAliveFinished(slot: slot, succeeded: succeeded)
            }

        case .scheduleWakeup(let instant):
            let deadline = self.epoch.advanced(by: instant)
            let clock = self.clock
            self._submit { [self] in
                do {
                    try await clock.sleep(until: deadline, tolerance: nil)
                } catch {
                    return  // cancelled: run() is ending
                }
                await self._timerFired()
            }

        case .reportLeakSuspected(let slot, let heldFor):
            self.core.totals.leaksHeldTooLong += 1
            self.metrics.leaksHeldTooLong.increment()
            self.logger.warning(
                "a lease is held longer than the leak threshold",
                metadata: [
                    LogKey.resourceID: "\(self.core.entries[slot]?.id ?? -1)",
                    LogKey.leaseSite: "\(self.core.sites[slot])",
                    LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
                ]
            )

        case .reportLeakRecovered(let slot, let heldFor):
            self.core.totals.leaksRecovered += 1
            self.metrics.leaksRecovered.increment()
            self.logger.info(
                "a lease reported as held too long came back",
                metadata: [
                    LogKey.resourceID: "\(self.core.entries[slot]?.id ?? -1)",
                    LogKey.leaseSite: "\(self.core.sites[slot])",
                    LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
                ]
            )

        case .circuitBreakerOpened:
            self.metrics.circuitBreakerOpen.record(1)
            self.logger.error(
                "circuit breaker opened: creating resources keeps failing and none is open; acquires fail fast",
                metadata: [LogKey.error: "\(self.lastCreationError.map { String(describing: $0) } ?? "unknown")"]
            )

        case .circuitBreakerClosed:
            self.metrics.circuitBreakerOpen.record(0)
            self.logger.info("circuit breaker closed: a resource was created")

        case .shutdownCompleted:
            self.runPhase = .finished
            self.jobs.push(.finish)
            self.logger.debug("shutdown completed")
        }
    }

    /// Runs background work in a child task of `run()`, or, once `run()` has ended, hands it to the task that
    /// caused it (see `orphanJobs`).
    func _submit(_ job: @escaping @Sendable () async -> Void) {
        switch self.runPhase {
        case .notStarted, .running:
            self.jobs.push(.job(job))
        case .finished:
            self.orphanJobs.append(job)
        }
    }

    private func _startCreation(slot: Int) {
        let id = self.nextResourceID
        self.nextResourceID += 1
        let factory = self.factory
        let afterCreate = self.hooks.afterCreate
        let clock = self.clock
        self._submit { [self] in
            let start = clock.now
            let resource: Resource
            do {
                resource = try await factory.create()
            } catch {
                await self._creationFailed(slot: slot, error: error)
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
                    await self._countHookFailure()
                    await self._creationFailed(slot: slot, error: error)
                    return
                }
            }
            let duration = start.duration(to: clock.now)
            self.metrics.createTime.recordNanoseconds(Int64(clamping: duration.clampedNanoseconds))
            await self._created(PooledResource(resource: resource, slot: slot, id: id))
        }
    }

    private func _startClose(slot: Int, reason: PoolStateMachine.EvictionReason) {
        guard let entry = self.core.entries[slot] else {
            preconditionFailure("close of slot \(slot) without a resource")
        }
        self.core.entries[slot] = nil
        self.core.totals.evictions[reason.rawValue, default: 0] += 1
        self.metrics.evictions[reason]?.increment()
        self.logger.debug(
            "closing resource",
            metadata: [LogKey.resourceID: "\(entry.id)", LogKey.reason: "\(reason.rawValue)"]
        )
        let factory = self.factory
        let beforeClose = self.hooks.beforeClose
        self._submit { [self] in
            if let beforeClose {
                do {
                    try await beforeClose(entry.resource)
                } catch {
                    self.metrics.hookFailures[.beforeClose]?.increment()
                    self.logger.warning(
                        "before-close hook threw; closing anyway",
                        metadata: [LogKey.resourceID: "\(entry.id)", LogKey.error: "\(error)"]
                    )
                    await self._countHookFailure()
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
            await self._closed(slot: slot)
        }
    }

    // MARK: Events reported by background work

    func _timerFired() {
        let now = self._now()
        self.core.machine.timerFired(now: now)
        self._afterEvent(now: now)
    }

    func _created(_ entry: PooledResource<Resource>) {
        self.core.entries[entry.slot] = entry
        self.core.totals.creations += 1
        self.logger.debug("created resource", metadata: [LogKey.resourceID: "\(entry.id)"])
        let now = self._now()
        self.core.machine.resourceCreated(slot: entry.slot, now: now, lifetimeJitter: self.jitter.next())
        self._afterEvent(now: now)
    }

    func _creationFailed(slot: Int, error: any Error) {
        self.lastCreationError = error
        self.core.totals.creationFailures += 1
        self.metrics.creationFailures.increment()
        self.core.machine.creationFailed(slot: slot, now: self._now(), backoffJitter: self.jitter.next())
        self.logger.warning(
            "creating a resource failed",
            metadata: [
                LogKey.error: "\(error)",
                LogKey.attempt: "\(self.core.machine.creation.consecutiveFailures)",
            ]
        )
        self._afterEvent()
    }

    func _closed(slot: Int) {
        let now = self._now()
        self.core.machine.resourceClosed(slot: slot, now: now)
        self._afterEvent(now: now)
    }

    func _keepAliveFinished(slot: Int, succeeded: Bool) {
        let now = self._now()
        self.core.machine.keepAliveFinished(slot: slot, now: now, succeeded: succeeded)
        self._afterEvent(now: now)
    }
}
