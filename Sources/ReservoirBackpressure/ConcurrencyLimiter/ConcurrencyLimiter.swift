import CoreMetrics
import Logging
import Synchronization

/// What an operation's outcome tells an adaptive limiter.
public struct LimiterOutcome: Hashable, Sendable {
    @usableFromInline enum Base: UInt8, Sendable {
        case success
        case dropped
        case ignored
    }

    @usableFromInline let base: Base

    /// The operation completed; its latency is a sample.
    public static let success = LimiterOutcome(base: .success)
    /// The operation failed in a way that signals overload (timed out, rejected downstream).
    public static let dropped = LimiterOutcome(base: .dropped)
    /// The operation tells nothing about load (for example it failed validation); no sample.
    public static let ignored = LimiterOutcome(base: .ignored)
}

/// A bulkhead: at most `limit` operations in flight, a bounded FIFO queue for the rest.
///
/// ```swift
/// let bulkhead = try ConcurrencyLimiter(limit: 8, maxQueueLength: 100)
/// let user = try await bulkhead.withPermit(timeout: .seconds(1)) {
///     try await database.fetchUser(id)
/// }
/// ```
///
/// - A call that finds a free slot runs at once; otherwise it waits in FIFO order, up to `timeout`.
/// - A call that finds the queue full is rejected at once with ``BackpressureError/Code/queueFull``.
/// - With a `deadline`, a call is shed at once (``BackpressureError/Code/shed``) when the predicted queueing time
///   — waiters ahead ÷ limit × mean hold time — would end past the deadline.
/// - ``withPermit(timeout:deadline:isolation:_:)`` returns the permit on every path: success, error, cancellation.
public final class ConcurrencyLimiter<C: Clock>: Sendable where C.Duration == Duration {
    @usableFromInline
    typealias Waiter = UnsafeContinuation<BackpressureError.Code?, Never>

    @usableFromInline
    struct Core: Sendable {
        @usableFromInline var machine: ConcurrencyLimiterStateMachine<Waiter>
        @usableFromInline var adaptive: AdaptiveLimitStateMachine?
        /// Exponentially weighted mean of permit hold times in nanoseconds; 0 until the first release.
        @usableFromInline var meanHold: Double = 0
    }

    /// What an operation's outcome tells an adaptive limiter.
    public typealias Outcome = LimiterOutcome

    /// A slot in the limiter. Release it with ``release(outcome:)``; dropping it releases it as
    /// ``LimiterOutcome/ignored``. `~Copyable`, so it is released exactly once.
    public struct Permit: ~Copyable, @unchecked Sendable {
        // Unchecked: the only reference is an `Unmanaged` to the (Sendable) limiter, retained once by this permit
        // and released exactly once, by `release(outcome:)` or by `deinit`.
        @usableFromInline let limiter: Unmanaged<ConcurrencyLimiter<C>>
        @usableFromInline let acquiredAt: Double
        @usableFromInline let inFlightAtStart: Int

        @inlinable
        init(limiter: ConcurrencyLimiter<C>, acquiredAt: Double, inFlightAtStart: Int) {
            self.limiter = Unmanaged.passRetained(limiter)
            self.acquiredAt = acquiredAt
            self.inFlightAtStart = inFlightAtStart
        }

        /// Gives the slot back and reports the outcome (the hold time is the latency sample).
        ///
        /// - Parameter outcome: What the operation's result tells an adaptive limiter; default ``LimiterOutcome/success``.
        public consuming func release(outcome: Outcome = .success) {
            let limiter = self.limiter.takeRetainedValue()
            let acquiredAt = self.acquiredAt
            let inFlight = self.inFlightAtStart
            discard self
            limiter.released(acquiredAt: acquiredAt, inFlight: inFlight, outcome: outcome)
        }

        deinit {
            limiter.takeRetainedValue().released(acquiredAt: acquiredAt, inFlight: inFlightAtStart, outcome: .ignored)
        }
    }

    /// A snapshot for dashboards and tests.
    public struct Statistics: Hashable, Sendable {
        /// The current limit.
        public var limit: Int
        /// Operations holding a permit.
        public var inFlight: Int
        /// Callers waiting for a permit.
        public var waiting: Int
        /// The mean time a permit was held, or `nil` before the first release.
        public var meanHoldTime: Duration?
        /// The adaptive limiter's latency estimate (gradient: the baseline; pool wait: the last window mean).
        public var latencyEstimate: Duration?
    }

    @usableFromInline let state: Mutex<Core>
    @usableFromInline let clock: C
    @usableFromInline let origin: C.Instant
    @usableFromInline let metrics: LimiterMetrics
    let logger: Logger?
    let label: String

    init(
        machine: ConcurrencyLimiterStateMachine<Waiter>,
        adaptive: AdaptiveLimitStateMachine?,
        clock: C,
        kind: String,
        label: String,
        metricsFactory: (any MetricsFactory)?,
        logger: Logger?
    ) {
        self.logger = logger
        self.label = label
        self.state = Mutex(Core(machine: machine, adaptive: adaptive))
        self.clock = clock
        self.origin = clock.now
        self.metrics = LimiterMetrics(kind: kind, label: label, factory: metricsFactory ?? MetricsSystem.factory)
        metrics.limit.record(machine.limit)
    }

    /// Creates a fixed concurrency limiter.
    ///
    /// - Parameters:
    ///   - limit: The most operations in flight; at least 1.
    ///   - maxQueueLength: The most callers waiting; 0 rejects whenever all slots are taken. Default 1024.
    ///   - clock: The clock for timeouts, deadlines and hold times.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where shutdown is logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `limit` or `maxQueueLength`.
    public convenience init(
        limit: Int,
        maxQueueLength: Int = 1024,
        clock: C,
        label: String = "bulkhead",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        guard limit >= 1 else { throw .invalid("limit", "The limit must be at least 1, got \(limit).") }
        guard maxQueueLength >= 0 else {
            throw .invalid("maxQueueLength", "The queue length must be at least 0, got \(maxQueueLength).")
        }
        self.init(
            machine: ConcurrencyLimiterStateMachine(limit: limit, maxQueueLength: maxQueueLength),
            adaptive: nil,
            clock: clock,
            kind: "concurrency",
            label: label,
            metricsFactory: metricsFactory,
            logger: logger
        )
    }

    @inlinable
    func nanoseconds(_ instant: C.Instant) -> Double { instant.nanoseconds(since: origin) }

    /// Waits for a slot and returns it as a permit.
    ///
    /// - Parameters:
    ///   - timeout: The longest wait in the queue; `nil` waits until a slot frees or the task is cancelled.
    ///   - deadline: When the caller's work must be done by: fail at once with ``BackpressureError/Code/shed`` if
    ///     the predicted queueing time ends after it; also bounds the wait like a timeout.
    /// - Returns: The permit.
    /// - Throws: ``BackpressureError/Code/queueFull``, ``BackpressureError/Code/shed``,
    ///   ``BackpressureError/Code/timedOut``, ``BackpressureError/Code/cancelled``,
    ///   ``BackpressureError/Code/limiterShutDown``.
    public func acquire(timeout: Duration? = nil, deadline: C.Instant? = nil) async throws(BackpressureError) -> Permit
    {
        let start = clock.now
        let now = nanoseconds(start)
        let deadlineNanoseconds = deadline.map(nanoseconds)
        let (action, inFlight) = state.withLock {
            core -> (ConcurrencyLimiterStateMachine<Waiter>.AcquireAction, Int) in
            let action = core.machine.acquire()
            if case .mustWait = action, let deadlineNanoseconds, core.meanHold > 0 {
                let ahead = Double(core.machine.waiters.count + 1)
                let predicted = ahead / Double(core.machine.limit) * core.meanHold
                if now + predicted > deadlineNanoseconds { return (.failed(.shed), core.machine.inFlight) }
            }
            return (action, core.machine.inFlight)
        }
        switch action {
        case .granted:
            return grantedPermit(acquiredAt: now, inFlight: inFlight)
        case .failed(let code):
            metrics.rejected.increment()
            throw Self.error(code)
        case .mustWait(let id):
            var waitUntil: C.Instant? = timeout.map { start.advanced(by: $0) }
            if let deadline { waitUntil = waitUntil.map { Swift.min($0, deadline) } ?? deadline }
            let failure: BackpressureError.Code?
            if let waitUntil {
                // The timer may fire before this caller registers (with a zero timeout or a past deadline it
                // usually does): the record tells registration so. See `WaiterDeadline`.
                let record = WaiterDeadline()
                failure = await withTaskGroup(of: Void.self) { group in
                    group.addTask { [self] in
                        do {
                            try await clock.sleep(until: waitUntil, tolerance: nil)
                        } catch {
                            return
                        }
                        self.waiterTimedOut(id: id, deadline: record)
                    }
                    let failure = await wait(id: id, deadline: record)
                    group.cancelAll()
                    return failure
                }
            } else {
                failure = await wait(id: id)
            }
            let grantedAt = nanoseconds(clock.now)
            if let failure {
                metrics.rejected.increment()
                throw Self.error(failure)
            }
            metrics.waited.recordNanoseconds(Int64(grantedAt - now))
            return grantedPermit(acquiredAt: grantedAt, inFlight: state.withLock { $0.machine.inFlight })
        }
    }

    @usableFromInline
    func grantedPermit(acquiredAt: Double, inFlight: Int) -> Permit {
        metrics.granted.increment()
        metrics.inFlight.record(inFlight)
        return Permit(limiter: self, acquiredAt: acquiredAt, inFlightAtStart: inFlight)
    }

    func wait(id: UInt64, deadline: WaiterDeadline? = nil) async -> BackpressureError.Code? {
        var didSuspend = false
        defer { if didSuspend { metrics.waiting.decrement() } }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: Waiter) in
                let action = state.withLock {
                    $0.machine.acquireOrWait(
                        id: id,
                        token: continuation,
                        isCancelled: Task.isCancelled,
                        deadlinePassed: deadline?.hasPassed ?? false
                    )
                }
                switch action {
                case .granted: continuation.resume(returning: nil)
                case .failed(let code): continuation.resume(returning: code)
                case .suspended:
                    didSuspend = true
                    metrics.waiting.increment()
                }
            }
        } onCancel: {
            self.waiterCancelled(id: id, code: .cancelled)
        }
    }

    func waiterCancelled(id: UInt64, code: BackpressureError.Code) {
        let waiter = state.withLock { $0.machine.waiterCancelled(id: id) }
        waiter?.resume(returning: code)
    }

    /// The timer of a timed acquire fired: fail the caller if it waits, or record that its deadline passed so that
    /// it does not start waiting (it may not have registered yet).
    func waiterTimedOut(id: UInt64, deadline: WaiterDeadline) {
        let waiter = state.withLock { core in
            let waiter = core.machine.waiterCancelled(id: id)
            if waiter == nil { deadline.markPassed() }
            return waiter
        }
        waiter?.resume(returning: .timedOut)
    }

    /// Runs `body` holding a slot; the slot is returned on every path.
    ///
    /// An error thrown by `body` is rethrown; for an adaptive limiter it counts as ``LimiterOutcome/ignored`` (use
    /// ``acquire(timeout:deadline:)`` and ``Permit/release(outcome:)`` to report drops).
    ///
    /// - Parameters:
    ///   - timeout: The longest wait in the queue.
    ///   - deadline: Shed at once when the predicted queueing time ends after it.
    ///   - isolation: The caller's isolation; `body` runs there.
    ///   - body: The operation.
    /// - Returns: What `body` returns.
    /// - Throws: The limiter's ``BackpressureError`` (see ``acquire(timeout:deadline:)``) or what `body` throws.
    public func withPermit<T>(
        timeout: Duration? = nil,
        deadline: C.Instant? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async throws -> T {
        let permit = try await acquire(timeout: timeout, deadline: deadline)
        do {
            let result = try await body()
            permit.release(outcome: .success)
            return result
        } catch {
            permit.release(outcome: .ignored)
            throw error
        }
    }

    func released(acquiredAt: Double, inFlight: Int, outcome: Outcome) {
        let now = nanoseconds(clock.now)
        let hold = Swift.max(0, now - acquiredAt)
        let (waiter, admitted, newLimit, estimate, inFlightNow) = state.withLock { core in
            if outcome != .ignored {
                core.meanHold = core.meanHold == 0 ? hold : core.meanHold * 0.9 + hold * 0.1
            }
            let waiter = core.machine.released()
            var admitted = OneOrMany<Waiter>()
            var newLimit: Int?
            if outcome != .ignored, var adaptive = core.adaptive {
                newLimit = adaptive.sampleRecorded(latency: hold, inFlight: inFlight, dropped: outcome == .dropped)
                if let newLimit { admitted = core.machine.limitChanged(to: newLimit) }
                core.adaptive = adaptive
            }
            return (waiter, admitted, newLimit, core.adaptive?.latencyEstimate, core.machine.inFlight)
        }
        waiter?.resume(returning: nil)
        admitted.visit { $0.resume(returning: nil) }
        metrics.inFlight.record(inFlightNow)
        if let newLimit { limitMoved(to: newLimit, estimate: estimate) }
        if let estimate { metrics.latencyEstimate.record(estimate) }
    }

    func limitMoved(to newLimit: Int, estimate: Double?) {
        metrics.limit.record(newLimit)
        logger?.debug(
            "Adaptive limit changed",
            metadata: [
                LogKey.limiter: "\(label)", LogKey.limit: "\(newLimit)",
                LogKey.latencyEstimate: "\(Int64(estimate ?? 0))",
            ]
        )
    }

    func limitChanged(_ newLimit: Int) {
        let admitted = state.withLock { $0.machine.limitChanged(to: newLimit) }
        admitted.visit { $0.resume(returning: nil) }
        metrics.limit.record(newLimit)
    }

    /// Feeds a pool's acquire-wait time to an adaptive limiter in ``AdaptiveLimitPolicy/poolWaitTime(target:initialLimit:minLimit:maxLimit:backoffRatio:windowSize:)`` mode.
    func poolWaitRecorded(_ wait: Duration) {
        let (admitted, newLimit, estimate) = state.withLock { core -> (OneOrMany<Waiter>, Int?, Double?) in
            guard var adaptive = core.adaptive else { return (.none, nil, nil) }
            let newLimit = adaptive.poolWaitRecorded(wait: wait.nanosecondsDouble, inFlight: core.machine.inFlight)
            core.adaptive = adaptive
            let admitted = newLimit.map { core.machine.limitChanged(to: $0) } ?? .none
            return (admitted, newLimit, adaptive.latencyEstimate)
        }
        admitted.visit { $0.resume(returning: nil) }
        if let newLimit { limitMoved(to: newLimit, estimate: estimate) }
        if let estimate { metrics.latencyEstimate.record(estimate) }
    }

    /// A snapshot of the limiter.
    public var statistics: Statistics {
        state.withLock { core in
            Statistics(
                limit: core.machine.limit,
                inFlight: core.machine.inFlight,
                waiting: core.machine.waiters.count,
                meanHoldTime: core.meanHold > 0 ? .nanosecondsDouble(core.meanHold) : nil,
                latencyEstimate: core.adaptive.flatMap {
                    $0.latencyEstimate > 0 ? .nanosecondsDouble($0.latencyEstimate) : nil
                }
            )
        }
    }

    /// Stops the limiter: waiting callers fail with ``BackpressureError/Code/limiterShutDown``, as do later calls.
    /// Permits already held stay valid until released.
    public func shutdown() {
        let waiters = state.withLock { $0.machine.shutDown() }
        for waiter in waiters { waiter.resume(returning: .limiterShutDown) }
        logger?.debug("Limiter shut down", metadata: [LogKey.limiter: "\(label)", LogKey.waiters: "\(waiters.count)"])
    }

    static func error(_ code: BackpressureError.Code) -> BackpressureError {
        switch code {
        case .queueFull:
            BackpressureError(code, message: "All slots are taken and the wait queue is full; retry later.")
        case .shed:
            BackpressureError(code, message: "The predicted queueing time ends after the deadline; shed at once.")
        case .timedOut: BackpressureError(code, message: "No slot freed up within the timeout.")
        case .cancelled: BackpressureError(code, message: "The task was cancelled while it waited for a slot.")
        case .limiterShutDown: BackpressureError(code, message: "The limiter was shut down.")
        default: BackpressureError(code, message: "The limiter refused the call.")
        }
    }
}

extension ConcurrencyLimiter where C == ContinuousClock {
    /// Creates a fixed concurrency limiter on the continuous clock.
    ///
    /// - Parameters:
    ///   - limit: The most operations in flight; at least 1.
    ///   - maxQueueLength: The most callers waiting; default 1024.
    ///   - label: The `limiter` dimension of the metrics.
    ///   - metricsFactory: Where metrics go; `nil` uses `MetricsSystem.factory`.
    ///   - logger: Where shutdown is logged (debug); `nil` logs nothing.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field.
    public convenience init(
        limit: Int,
        maxQueueLength: Int = 1024,
        label: String = "bulkhead",
        metricsFactory: (any MetricsFactory)? = nil,
        logger: Logger? = nil
    ) throws(BackpressureError) {
        try self.init(
            limit: limit,
            maxQueueLength: maxQueueLength,
            clock: ContinuousClock(),
            label: label,
            metricsFactory: metricsFactory,
            logger: logger
        )
    }
}
