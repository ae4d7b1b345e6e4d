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
        self.handleEvent { core, now, _ in core.machine.startCreationsIfNeeded(now: now) }
        let jobs = self.jobs
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    loop: while true {
                        switch await jobs.next() {
                        case .job(let job):
                            group.addTask { await job() }
                        case .drainRequested:
                            self.drainRequested()
                        case .forcedShutdownRequested:
                            self.forcedShutdownRequested()
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

    func drainRequested() {
        self.logger.debug("graceful shutdown: draining")
        let timeout = self.configuration.drainTimeout
        self.handleEvent { core, now, _ in core.machine.drainRequested(now: now, timeout: timeout) }
    }

    func forcedShutdownRequested() {
        self.logger.debug("forced shutdown")
        self.handleEvent { core, _, _ in core.machine.forcedShutdownRequested() }
    }

    /// A snapshot of the pool's figures: current counts, the oldest waiter's age, totals, the recent window and the
    /// sizing advice (see ``SizingAdvice`` for the formula).
    ///
    /// Synchronous and safe to call from anywhere, including a log handler or a metrics backend that the pool is
    /// calling: the raw figures are copied under the pool's lock (a few stores and reference counts), and the
    /// quantiles, the sizing advice and the sorted leak table are computed after it is released.
    public nonisolated var statistics: ResourcePoolStatistics {
        let now = self.timeSinceEpoch()
        let figures = self.state.withLock { core in
            core.window.rotateIfNeeded(now: now)
            return StatisticsFigures(core, now: now)
        }
        return self.makeStatistics(figures)
    }

    /// The pool's figures.
    @available(*, deprecated, renamed: "statistics")
    public nonisolated func stats() -> ResourcePoolStatistics {
        self.statistics
    }

    /// Computes the statistics from raw figures, without the lock.
    nonisolated func makeStatistics(_ figures: StatisticsFigures) -> ResourcePoolStatistics {
        let now = figures.now
        let current = figures.current
        let previous = figures.previous
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
            leasedNow: figures.leased,
            // With self-sizing on, its estimate stands in for the database's knee when none was measured.
            throughputKnee: self.configuration.throughputKnee
                ?? (figures.selfSizing ? figures.effectiveMaximum : nil)
        )
        return ResourcePoolStatistics(
            idle: figures.idle,
            leased: figures.leased,
            creating: figures.creating,
            keepingAlive: figures.keepingAlive,
            closing: figures.closing,
            waiting: figures.waiting,
            oldestWaiterAge: figures.oldestWaiterEnqueuedAt.map { now - $0 },
            minimumSize: self.configuration.minimumSize,
            maximumSize: self.configuration.maximumSize,
            effectiveMaximumSize: figures.effectiveMaximum,
            circuitBreakerOpen: figures.circuitBreakerOpen,
            consecutiveCreationFailures: figures.consecutiveCreationFailures,
            totals: figures.totals,
            window: window,
            sizing: sizing,
            leaksBySite: figures.leakSites.values.sorted {
                ($0.dropped + $0.heldTooLong, $1.site) > ($1.dropped + $1.heldTooLong, $0.site)
            }
        )
    }
}

/// The raw figures behind ``ResourcePoolStatistics``, copied under the pool's lock so that everything computed from
/// them is computed after it. The histograms and tables are copy-on-write: copying them costs reference counts, and
/// a lease that records into the window while a snapshot is still being read pays the one real copy.
struct StatisticsFigures: Sendable {
    let now: Duration
    let current: StatisticsWindow.Half
    let previous: StatisticsWindow.Half
    let idle: Int
    let leased: Int
    let creating: Int
    let keepingAlive: Int
    let closing: Int
    let waiting: Int
    let oldestWaiterEnqueuedAt: Duration?
    let effectiveMaximum: Int
    let selfSizing: Bool
    let circuitBreakerOpen: Bool
    let consecutiveCreationFailures: Int
    let totals: ResourcePoolStatistics.Totals
    let leakSites: [String: ResourcePoolStatistics.LeakSite]

    init<Resource>(_ core: borrowing PoolCore<Resource>, now: Duration) {
        self.now = now
        self.current = core.window.current
        self.previous = core.window.previous
        self.idle = core.machine.idle.count
        self.leased = core.machine.counts.leased
        self.creating = core.machine.counts.creating
        self.keepingAlive = core.machine.counts.keepingAlive
        self.closing = core.machine.counts.closing
        self.waiting = core.machine.waiters.count
        self.oldestWaiterEnqueuedAt = core.machine.waiters.oldest?.enqueuedAt
        self.effectiveMaximum = core.machine.effectiveMaximum
        self.selfSizing = core.isSelfSizing
        self.circuitBreakerOpen = core.machine.creation.circuitBreakerOpen
        self.consecutiveCreationFailures = core.machine.creation.consecutiveFailures
        self.totals = core.totals
        self.leakSites = core.leakSites
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
