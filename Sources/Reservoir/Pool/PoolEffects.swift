import CoreMetrics
import Logging
import Synchronization

/// What one locked section of the pool decided to do once the lock is released: the waiters to resume, the metric
/// values to record, the log records to write and the background work to queue.
///
/// Under the pool's lock only the state changes and this value is filled in; `ResourcePool.applyEffects(_:)` carries it
/// out after unlocking, in the task that held the lock (the pattern of postgres-nio's `modifyStateAndRunActions`).
/// So a slow log handler or metrics backend never lengthens a critical section, and code they call may use the pool
/// (read its statistics, acquire from it) without deadlocking.
///
/// An uncontended acquire or release fills in only the inline fields (one wait or hold time, which count gauges
/// changed, at most one resume) and allocates nothing; everything rarer goes to ``others``, in order, which
/// exists only when something is there (`nil` costs no reference counting, unlike an empty array).
@usableFromInline
struct PoolEffects<Resource: Sendable>: Sendable {
    /// The waiters served, resumed last (after the metrics and logs that their lease caused).
    @usableFromInline var resumes = PendingResumes<Resource>()
    /// The first wait to record in `db.client.connection.wait_time` (zero for a lease served at once); further ones
    /// are in ``others``.
    @usableFromInline var waitNanoseconds: UInt64?
    /// The hold time of the lease that ended, for `db.client.connection.use_time`.
    @usableFromInline var holdNanoseconds: UInt64?
    /// The gauges whose published value changed (see ``PublishedGauge``).
    @usableFromInline var changedGauges = PoolMetrics.Gauges()
    /// Everything rarer, in the order it happened; `nil` when there is none.
    @usableFromInline var others: [PoolEffect]? = nil

    @inlinable
    init() {}

    /// Records a wait that ended, with or without a lease.
    @inlinable
    mutating func recordWait(nanoseconds: UInt64) {
        if case .none = self.waitNanoseconds {
            self.waitNanoseconds = nanoseconds
        } else {
            self.append(.waitTime(nanoseconds: nanoseconds))
        }
    }

    /// Writes a log record after unlocking.
    mutating func log(_ record: PoolLogRecord) {
        self.append(.log(record))
    }

    /// Increments a counter after unlocking.
    mutating func increment(_ counter: Counter?) {
        if let counter { self.append(.increment(counter)) }
    }

    /// Queues an item for `run()` after unlocking.
    mutating func submit(_ item: JobQueue.Item) {
        self.append(.submit(item))
    }

    /// Keeps a rare effect, after those already kept.
    @usableFromInline
    mutating func append(_ effect: PoolEffect) {
        if case .none = self.others {
            self.others = [effect]
        } else {
            self.others!.append(effect)
        }
    }
}

/// A side effect that is rare on the hot path, collected under the pool's lock and carried out after it.
@usableFromInline
enum PoolEffect: Sendable {
    /// Indicates that a log record must be written.
    case log(PoolLogRecord)
    /// Indicates that a counter must be incremented by one.
    case increment(Counter)
    /// Indicates that a wait must be recorded in `db.client.connection.wait_time`.
    case waitTime(nanoseconds: UInt64)
    /// Indicates that an item must be queued for `run()`.
    case submit(JobQueue.Item)
}

/// A log record of the pool, kept as values under the lock and formatted only when written, after it (describing an
/// error may run user code).
@usableFromInline
enum PoolLogRecord: Sendable {
    /// A resource is being closed.
    case closing(resourceID: Int, reason: PoolStateMachine.EvictionReason)
    /// A waiter's deadline passed.
    case acquireTimedOut(site: AcquireSite, waited: Duration)
    /// A lease is held past the leak threshold.
    case leakSuspected(resourceID: Int, site: AcquireSite, heldFor: Duration)
    /// A lease reported as held too long came back.
    case leakRecovered(resourceID: Int, site: AcquireSite, heldFor: Duration)
    /// A lease was dropped without release.
    case leaseDropped(resourceID: Int, site: AcquireSite, heldFor: Duration)
    /// Creating a resource failed.
    case creationFailed(error: any Error, attempt: Int)
    /// The circuit breaker opened, after the last creation failed with `error`.
    case circuitBreakerOpened(error: (any Error)?)
    /// The circuit breaker closed.
    case circuitBreakerClosed
    /// Shutdown completed.
    case shutdownCompleted

    /// Writes the record.
    func write(to logger: Logger) {
        switch self {
        case .closing(let resourceID, let reason):
            logger.debug(
                "closing resource",
                metadata: [LogKey.resourceID: "\(resourceID)", LogKey.reason: "\(reason.rawValue)"]
            )
        case .acquireTimedOut(let site, let waited):
            logger.debug(
                "acquire timed out",
                metadata: [LogKey.leaseSite: "\(site)", LogKey.waitMilliseconds: "\(waited.clampedNanoseconds / 1_000_000)"]
            )
        case .leakSuspected(let resourceID, let site, let heldFor):
            logger.warning(
                "a lease is held longer than the leak threshold",
                metadata: Self.leaseMetadata(resourceID: resourceID, site: site, heldFor: heldFor)
            )
        case .leakRecovered(let resourceID, let site, let heldFor):
            logger.info(
                "a lease reported as held too long came back",
                metadata: Self.leaseMetadata(resourceID: resourceID, site: site, heldFor: heldFor)
            )
        case .leaseDropped(let resourceID, let site, let heldFor):
            logger.warning(
                "a lease was dropped without release (leak): its resource is closed and replaced",
                metadata: Self.leaseMetadata(resourceID: resourceID, site: site, heldFor: heldFor)
            )
        case .creationFailed(let error, let attempt):
            logger.warning(
                "creating a resource failed",
                metadata: [LogKey.error: "\(error)", LogKey.attempt: "\(attempt)"]
            )
        case .circuitBreakerOpened(let error):
            logger.error(
                "circuit breaker opened: creating resources keeps failing and none is open; acquires fail fast",
                metadata: [LogKey.error: "\(error.map { String(describing: $0) } ?? "unknown")"]
            )
        case .circuitBreakerClosed:
            logger.info("circuit breaker closed: a resource was created")
        case .shutdownCompleted:
            logger.debug("shutdown completed")
        }
    }

    private static func leaseMetadata(resourceID: Int, site: AcquireSite, heldFor: Duration) -> Logger.Metadata {
        [
            LogKey.resourceID: "\(resourceID)",
            LogKey.leaseSite: "\(site)",
            LogKey.leaseHoldMilliseconds: "\(heldFor.clampedNanoseconds / 1_000_000)",
        ]
    }
}

/// A gauge whose value the pool publishes under its lock and records after it.
///
/// Recording after the lock lets two threads record out of order: one publishes 3 and another 2 a moment later, and
/// the 3 may reach the backend last, leaving a stale value until the next change. So the value travels through an
/// atomic instead of the effects value: under the lock the new value is stored (only when it changed); after it,
/// ``recordLatest()`` records the latest stored value and records again until the value it recorded is still the
/// latest. Whoever records last has then seen the final value, so the gauge ends up exact once the pool is quiet.
@usableFromInline
final class PublishedGauge: Sendable {
    @usableFromInline let gauge: Gauge
    /// Written only under the pool's lock; read by anyone.
    @usableFromInline let value: Atomic<Int>

    init(_ gauge: Gauge, initialValue: Int) {
        self.gauge = gauge
        self.value = Atomic(initialValue)
        gauge.record(initialValue)
    }

    /// Stores `newValue`, under the pool's lock. Returns whether it changed (then ``recordLatest()`` must follow).
    @inlinable
    func publish(_ newValue: Int) -> Bool {
        // Only the pool's lock holder writes, so a relaxed load sees the last value stored.
        if self.value.load(ordering: .relaxed) == newValue { return false }
        self.value.store(newValue, ordering: .releasing)
        return true
    }

    /// Records the latest published value, after unlocking.
    @inlinable
    func recordLatest() {
        var recorded = self.value.load(ordering: .acquiring)
        while true {
            self.gauge.record(recorded)
            let latest = self.value.load(ordering: .acquiring)
            if latest == recorded { return }
            recorded = latest
        }
    }
}

extension ResourcePool {
    /// Carries out what a locked section collected. Call it after unlocking, in the task that held the lock.
    @inlinable
    nonisolated func applyEffects(_ effects: borrowing PoolEffects<Resource>) {
        if let others = effects.others { self.applyRareEffects(others) }
        if let nanoseconds = effects.waitNanoseconds {
            self.metrics.waitTime.recordNanoseconds(Int64(clamping: nanoseconds))
        }
        if let nanoseconds = effects.holdNanoseconds {
            self.metrics.useTime.recordNanoseconds(Int64(clamping: nanoseconds))
        }
        if !effects.changedGauges.isEmpty { self.metrics.recordLatest(effects.changedGauges) }
        effects.resumes.resumeAll()
        self.observation.stateChanged()
    }

    @usableFromInline
    nonisolated func applyRareEffects(_ others: [PoolEffect]) {
        for effect in others {
            switch effect {
            case .log(let record):
                record.write(to: self.logger)
            case .increment(let counter):
                counter.increment()
            case .waitTime(let nanoseconds):
                self.metrics.waitTime.recordNanoseconds(Int64(clamping: nanoseconds))
            case .submit(let item):
                self.jobs.push(item)
            }
        }
    }
}
