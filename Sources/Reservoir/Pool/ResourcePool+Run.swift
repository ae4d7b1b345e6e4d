import CoreMetrics
import DequeModule
import Logging
import Synchronization
import ServiceLifecycle

extension ResourcePool {
    /// Runs the pool: creates the minimum resources, runs every creation, close, keep-alive and timer in a child task
    /// of this call, and returns once the pool has shut down.
    ///
    /// Graceful shutdown (swift-service-lifecycle's, or ``triggerGracefulShutdown()``) drains the pool: new
    /// acquires fail with ``ResourcePoolError/Code/shutDown``, outstanding leases may finish within
    /// ``ResourcePoolConfiguration/drainTimeout``, then everything is closed. Cancelling the task running `run()`
    /// forces the shutdown: waiters fail, idle resources close at once, and `run()` returns when in-flight creations
    /// and closes have finished; resources still leased are closed when they come back, in the returning task.
    /// Nothing started by the pool keeps running after `run()` returns.
    ///
    /// - Throws: ``ResourcePoolError/Code/alreadyRunning`` when called a second time.
    public func run() async throws {
        let (alreadyStarted, preRunWatches) = self.state.withLock { core in
            switch core.runPhase {
            case .notStarted:
                core.runPhase = .running
                defer { core.preRunWatches = [:] }
                return (false, core.preRunWatches)
            case .running, .finished:
                return (true, [:])
            }
        }
        // Waiters that queued before now no longer need their own watch: this call times their deadlines.
        for watch in preRunWatches.values { watch.cancel() }
        if alreadyStarted {
            throw ResourcePoolError(
                .alreadyRunning,
                message: "run() was called on the pool '\(self.configuration.name)' a second time"
            )
        }
        self.logger.debug("pool started")
        self._handle { core, now in core.machine.startCreationsIfNeeded(now: now) }
        let jobs = self.jobs
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    loop: while true {
                        switch await jobs.next() {
                        case .job(let job):
                            group.addTask { await job() }
                        case .drainRequested:
                            self._drainRequested()
                        case .forcedShutdownRequested:
                            self._forcedShutdownRequested()
                        case .finish:
                            break loop
                        }
                    }
                    // Only sleeping timers can be left; they end at once when cancelled.
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                jobs.push(.drainRequested)
            }
        } onCancel: {
            jobs.push(.forcedShutdownRequested)
        }
        self.logger.debug("pool stopped")
    }

    func _drainRequested() {
        self.logger.debug("graceful shutdown: draining")
        let timeout = self.configuration.drainTimeout
        self._handle { core, now in core.machine.drainRequested(now: now, timeout: timeout) }
    }

    func _forcedShutdownRequested() {
        self.logger.debug("forced shutdown")
        self._handle { core, _ in core.machine.forcedShutdownRequested() }
    }

    /// A snapshot of the pool's figures: current counts, the oldest waiter's age, totals, the recent window and the
    /// sizing advice (see ``SizingAdvice`` for the formula).
    public func stats() -> ResourcePoolStatistics {
        let now = self._now()
        return self.state.withLock { core in self._statistics(&core, now: now) }
    }

    nonisolated func _statistics(_ core: inout PoolCore<Resource>, now: Duration) -> ResourcePoolStatistics {
        core.window.rotateIfNeeded(now: now)
        let current = core.window.current
        let previous = core.window.previous
        let span = max(now - previous.start, .milliseconds(1))
        let releases = current.hold.count + previous.hold.count
        let waits = current.wait.count + previous.wait.count
        let granted = current.granted + previous.granted
        let timeouts = current.timeouts + previous.timeouts
        func mean(_ sum: UInt64, _ count: UInt64) -> Duration? {
            count == 0 ? nil : Duration(nanoseconds: sum / count)
        }
        let spanSeconds = Double(span.clampedNanoseconds) / 1e9
        let window = ResourcePoolStatistics.Window(
            duration: span,
            acquisitions: Int(granted),
            timeouts: Int(timeouts),
            acquireRate: Double(granted + timeouts) / spanSeconds,
            meanHoldTime: mean(current.hold.sum &+ previous.hold.sum, releases),
            p99HoldTime: current.hold.quantile(0.99, mergedWith: previous.hold).map { Duration(nanoseconds: $0) },
            meanWaitTime: mean(current.wait.sum &+ previous.wait.sum, waits),
            p99WaitTime: current.wait.quantile(0.99, mergedWith: previous.wait).map { Duration(nanoseconds: $0) }
        )
        let sizing = SizingAdvice.compute(
            window: window,
            releases: releases,
            minimumSize: self.configuration.minimumSize,
            maximumSize: self.configuration.maximumSize,
            headroom: self.configuration.sizingHeadroom,
            leasedNow: core.machine.counts.leased,
            // With self-sizing on, its estimate stands in for the database's knee when none was measured.
            throughputKnee: self.configuration.throughputKnee
                ?? (core.sizeEstimator != nil ? core.machine.effectiveMaximum : nil)
        )
        return ResourcePoolStatistics(
            idle: core.machine.idle.count,
            leased: core.machine.counts.leased,
            creating: core.machine.counts.creating,
            keepingAlive: core.machine.counts.keepingAlive,
            closing: core.machine.counts.closing,
            waiting: core.machine.waiters.count,
            oldestWaiterAge: core.machine.waiters.oldest.map { now - $0.enqueuedAt },
            minimumSize: self.configuration.minimumSize,
            maximumSize: self.configuration.maximumSize,
            effectiveMaximumSize: core.machine.effectiveMaximum,
            circuitBreakerOpen: core.machine.creation.circuitBreakerOpen,
            consecutiveCreationFailures: core.machine.creation.consecutiveFailures,
            totals: core.totals,
            window: window,
            sizing: sizing,
            leaksBySite: core.leaksBySite
        )
    }
}

extension ResourcePool {
    /// The acquire sites of the leases currently out, for the test kit's "no outstanding leases" assertion.
    package func outstandingLeaseSites() -> [AcquireSite] {
        self.state.withLock { core in
            core.machine.slots.indices.compactMap { slot in
                core.machine.slots[slot].state == .leased ? core.sites[slot] : nil
            }
        }
    }
}
