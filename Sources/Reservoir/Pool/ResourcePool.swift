import CoreMetrics
import DequeModule
import Logging
import ServiceLifecycle
import Synchronization

/// A pool of reusable resources (connections, clients, sessions) created and closed through a ``ResourceFactory``.
///
/// The pool keeps `minimumSize` resources warm, grows on demand up to `maximumSize` (a new resource is started only
/// for a waiter that no resource soon to be free can serve), shrinks back after `idleTimeout`, replaces resources
/// past their (jittered) `maximumLifetime`, and serves waiters in FIFO order. See ``ResourcePoolConfiguration``.
///
/// The everyday API is ``withResource(timeout:fileID:line:function:isolation:_:)``, which returns the resource on
/// every path. Code that cannot be scoped takes a ``ResourceLease`` from ``lease(timeout:fileID:line:function:)``: it
/// is noncopyable, so a double release or a use after release does not compile, and a lease dropped without release
/// is reported as an exact leak (with its acquire site), its resource closed and replaced.
///
/// The pool is a swift-service-lifecycle `Service`: ``run()`` must be running for resources to be created, timers to
/// fire and closes to happen; it owns every background task. A graceful shutdown drains (new acquires fail,
/// outstanding leases may finish within `drainTimeout`, then everything is closed); cancelling `run()` forces it.
///
/// Its decisions live in a pure synchronous state machine behind a lock. Acquire and release run it in the calling
/// task (no actor hop) and resume served waiters directly; background work (the factory, hooks, closes, timers on the
/// injected clock) is queued for `run()`. Under the lock only the state changes: resuming waiters, recording
/// metrics, logging and queueing work happen after it is released, so a log handler or metrics backend may call
/// ``statistics`` or acquire from the pool. Every wait uses `PoolClock` (`ContinuousClock` unless you inject another,
/// such as the test kit's manual clock).
public final actor ResourcePool<Resource: Sendable, PoolClock: Clock>: Service where PoolClock.Duration == Duration {
    /// The lease type of this pool.
    public typealias Lease = ResourceLease<Resource, PoolClock>

    /// Everything mutable, behind one lock: acquire and release lock it in the calling task instead of hopping onto
    /// the actor (see `PoolCore`). The actor's own isolation only serialises `run()` and the calls that report
    /// background work.
    @usableFromInline nonisolated let state: Mutex<PoolCore<Resource>>

    @usableFromInline nonisolated let clock: PoolClock
    @usableFromInline nonisolated let epoch: PoolClock.Instant
    @usableFromInline nonisolated let metrics: PoolMetrics
    @usableFromInline nonisolated let hooks: ResourcePoolHooks<Resource>
    @usableFromInline nonisolated let defaultAcquireTimeout: Duration?
    nonisolated let factory: ResourceFactory<Resource>
    @usableFromInline nonisolated let logger: Logger
    nonisolated let jitter: JitterSource
    /// The configuration the pool was created with.
    public nonisolated let configuration: ResourcePoolConfiguration

    nonisolated let jobs = JobQueue()
    /// Wakes tests waiting for a change of state (see ``PoolObservation``); one atomic load per change otherwise.
    @usableFromInline nonisolated let observation = PoolObservation()

    /// Creates a pool. Nothing happens until ``run()`` starts.
    ///
    /// - Parameters:
    ///   - configuration: sizes, timeouts and policies; validated here.
    ///   - factory: creates and closes resources.
    ///   - hooks: optional code run at points of a resource's life.
    ///   - clock: the clock every wait and timestamp uses.
    ///   - jitter: the source of random values for lifetime and backoff jitter.
    ///   - logger: where the pool logs; it is never bootstrapped by the library.
    ///   - metricsFactory: where metrics are created (once, here); `nil` uses `MetricsSystem.factory`.
    /// - Throws: ``ResourcePoolError/Code/invalidConfiguration`` naming the offending field.
    public init(
        configuration: ResourcePoolConfiguration,
        factory: ResourceFactory<Resource>,
        hooks: ResourcePoolHooks<Resource> = ResourcePoolHooks(),
        clock: PoolClock,
        jitter: JitterSource = .system,
        logger: Logger = Logger(label: "reservoir.pool"),
        metricsFactory: (any MetricsFactory)? = nil
    ) throws {
        let machineConfiguration = try configuration.validated(
            hasKeepAliveHook: hooks.keepAlive != nil,
            hasValidationHook: hooks.beforeLease != nil
        )
        let core = PoolCore<Resource>(
            machine: PoolStateMachine(configuration: machineConfiguration),
            statisticsWindow: configuration.statisticsWindow,
            selfSizing: configuration.selfSizing
        )
        let effectiveMaximumSize = core.machine.effectiveMaximum
        self.state = Mutex(core)
        self.clock = clock
        self.epoch = clock.now
        self.metrics = PoolMetrics(
            poolName: configuration.name,
            minimumSize: configuration.minimumSize,
            maximumSize: configuration.maximumSize,
            effectiveMaximumSize: effectiveMaximumSize,
            factory: metricsFactory ?? MetricsSystem.factory
        )
        self.hooks = hooks
        self.defaultAcquireTimeout = configuration.acquireTimeout
        self.factory = factory
        var logger = logger
        logger[metadataKey: LogKey.poolName] = .string(configuration.name)
        self.logger = logger
        self.jitter = jitter
        self.configuration = configuration
    }

    /// Acquires a resource, runs `body` with it, and returns it to the pool on every path (return, throw,
    /// cancellation).
    ///
    /// Waits in FIFO order when every resource is busy. If `body` throws, the error is rethrown after the resource
    /// was returned; the after-release hook sees the error and may discard the resource.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for a resource; `nil` uses ``ResourcePoolConfiguration/acquireTimeout``.
    ///   - fileID: the acquire site, for leak reports (leave the default).
    ///   - line: the acquire site, for leak reports (leave the default).
    ///   - function: the acquire site, for leak reports (leave the default).
    ///   - isolation: the caller's isolation, inherited so that `body` runs where the caller does.
    ///   - body: the work to do with the resource. Do not let the resource escape it.
    /// - Returns: what `body` returns.
    /// - Throws: ``ResourcePoolError`` (``ResourcePoolError/Code/timeout``, ``ResourcePoolError/Code/tooManyWaiters``,
    ///   ``ResourcePoolError/Code/circuitBreakerOpen``, ``ResourcePoolError/Code/shutDown``), `CancellationError`
    ///   when the task is cancelled while waiting, or what `body` throws.
    @inlinable
    public func withResource<Value>(
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Resource) async throws -> Value
    ) async throws -> Value {
        let lease = try await self.lease(timeout: timeout, fileID: fileID, line: line, function: function)
        let value: Value
        do {
            value = try await body(lease.resource)
        } catch {
            await lease.endLease(markedBroken: false, error: error)
            throw error
        }
        await lease.endLease(markedBroken: false, error: nil)
        return value
    }

    /// Acquires a resource as an explicit lease, for code that cannot be scoped with
    /// ``withResource(timeout:fileID:line:function:isolation:_:)``.
    ///
    /// End the lease with ``ResourceLease/release()`` or ``ResourceLease/release(discarding:)``. A lease dropped
    /// without release is an exact leak: it is counted, logged with this call's site, and its resource is closed and
    /// replaced.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for a resource; `nil` uses ``ResourcePoolConfiguration/acquireTimeout``.
    ///   - fileID: the acquire site, for leak reports (leave the default).
    ///   - line: the acquire site, for leak reports (leave the default).
    ///   - function: the acquire site, for leak reports (leave the default).
    /// - Returns: the lease.
    /// - Throws: ``ResourcePoolError`` or `CancellationError`, as for `withResource`.
    @inlinable
    public nonisolated func lease(
        timeout: Duration? = nil,
        fileID: StaticString = #fileID,
        line: UInt = #line,
        function: StaticString = #function
    ) async throws -> Lease {
        let site = AcquireSite(fileID: fileID, line: line, function: function)
        var deadline: Duration? = nil
        var retry = false
        while true {
            let acquired = try await self.acquire(timeout: timeout, deadline: deadline, site: site, retry: retry)
            if acquired.grant.validate, let validate = self.hooks.beforeLease {
                if await self.runBeforeLeaseHook(acquired, site: site, hook: validate) {
                    return Lease(pool: self, entry: acquired.entry, site: site)
                }
                // The resource failed validation and is being replaced: try again with the same deadline, keeping
                // this caller's turn ahead of callers that came later.
                deadline = acquired.deadline
                retry = true
                continue
            }
            return Lease(pool: self, entry: acquired.entry, site: site)
        }
    }

    /// Replaces every resource (for example after a failover): idle ones are closed now, leased ones when they come
    /// back, ones being created or checked when they finish. Replacements are created as needed.
    public nonisolated func invalidateAll() {
        self.handleEvent { core, now, _ in core.machine.invalidateAllRequested(now: now) }
        self.logger.info("invalidated every resource")
    }

    /// Flags every idle resource for validation before its next lease (the before-lease hook then runs whatever the
    /// validation policy says). Call it when a failure may have hit every resource, such as a connection error.
    public nonisolated func requestIdleValidation() {
        self.state.withLock { $0.machine.idleValidationRequested() }
    }

    /// Starts a graceful shutdown, as swift-service-lifecycle's graceful shutdown does: new acquires fail with
    /// ``ResourcePoolError/Code/shutDown``, waiters fail, idle resources close, outstanding leases may finish within
    /// ``ResourcePoolConfiguration/drainTimeout``; then ``run()`` returns. Returns at once.
    public nonisolated func triggerGracefulShutdown() {
        self.jobs.push(.drainRequested)
    }

    @usableFromInline
    nonisolated func timeSinceEpoch() -> Duration {
        self.epoch.duration(to: self.clock.now)
    }
}

/// A resource and the slot it lives in; one object per resource, created once, shared by its leases.
@usableFromInline
final class PooledResource<Resource: Sendable>: Sendable {
    @usableFromInline let resource: Resource
    @usableFromInline let slot: Int
    let id: Int

    init(resource: Resource, slot: Int, id: Int) {
        self.resource = resource
        self.slot = slot
        self.id = id
    }
}

/// The source of random values (in `0..<1`) for lifetime and backoff jitter. Inject a fixed one in tests.
public struct JitterSource: Sendable {
    let next: @Sendable () -> Double

    /// Creates a source from a function returning values in `0..<1` (others are clamped).
    public init(_ next: @escaping @Sendable () -> Double) {
        self.next = next
    }

    /// The system random generator.
    public static var system: JitterSource {
        JitterSource { Double.random(in: 0..<1) }
    }

    /// Always the same value: for deterministic tests.
    public static func constant(_ value: Double) -> JitterSource {
        JitterSource { value }
    }
}

/// Metadata keys of the module's log lines, in one place (dot notation, as the rest of Reservoir).
enum LogKey {
    static let poolName = "pool.name"
    static let resourceID = "resource.id"
    static let leaseSite = "lease.site"
    static let leaseHoldMilliseconds = "lease.hold_ms"
    static let waitMilliseconds = "lease.wait_ms"
    static let reason = "eviction.reason"
    static let error = "error.message"
    static let attempt = "creation.attempt"
}

extension ResourcePool where PoolClock == ContinuousClock {
    /// Creates a pool that uses `ContinuousClock`. Nothing happens until ``run()`` starts.
    ///
    /// - Parameters:
    ///   - configuration: sizes, timeouts and policies; validated here.
    ///   - factory: creates and closes resources.
    ///   - hooks: optional code run at points of a resource's life.
    ///   - logger: where the pool logs; it is never bootstrapped by the library.
    ///   - metricsFactory: where metrics are created (once, here); `nil` uses `MetricsSystem.factory`.
    /// - Throws: ``ResourcePoolError/Code/invalidConfiguration`` naming the offending field.
    public init(
        configuration: ResourcePoolConfiguration,
        factory: ResourceFactory<Resource>,
        hooks: ResourcePoolHooks<Resource> = ResourcePoolHooks(),
        logger: Logger = Logger(label: "reservoir.pool"),
        metricsFactory: (any MetricsFactory)? = nil
    ) throws {
        try self.init(
            configuration: configuration,
            factory: factory,
            hooks: hooks,
            clock: ContinuousClock(),
            jitter: .system,
            logger: logger,
            metricsFactory: metricsFactory
        )
    }
}
