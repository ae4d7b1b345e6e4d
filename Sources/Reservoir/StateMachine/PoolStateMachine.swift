import DequeModule
import HeapModule

/// The pool's decisions, as a pure synchronous state machine.
///
/// The `ResourcePool` actor owns one value of this type, feeds it events named for what happened (`leaseRequested`,
/// `leaseReleased`, `resourceCreated`, `creationFailed`, `timerFired`, …) and carries out the actions it produces.
/// The machine never awaits, locks, reads a clock, calls user code, logs or records metrics: time comes in as `now`
/// (the duration since the pool's epoch) and randomness comes in as unit values in `0..<1`.
///
/// Resources are known by their slot index (`0..<maximumSize`); the shell keeps the resource values in a parallel
/// table. The machine is not generic, so its code is compiled once, fully specialised, and never looks up generic
/// metadata at run time.
///
/// Each event returns what its caller must know at once (for example whether a lease was granted) and appends any
/// further work (creations, closes, resumptions, timers, reports) to a buffer of ``Action`` values that the shell
/// drains with ``popAction()`` after the event. The buffer is a `Deque` that keeps its capacity, so the steady state
/// allocates nothing.
@usableFromInline
struct PoolStateMachine: Sendable {
    /// Time as the machine sees it: the duration since the pool's epoch.
    @usableFromInline typealias Instant = Duration

    /// A waiter's identity: a sequence number, strictly increasing in queue order.
    @usableFromInline typealias WaiterID = UInt64

    // MARK: Stored state

    @usableFromInline let configuration: Configuration

    /// One entry per possible resource; `slots.count == configuration.maximumSize`.
    @usableFromInline var slots: [Slot]

    /// Idle slot indices. The most recently used is at the back (leased first: LIFO); the longest idle is at the
    /// front (closed first when the pool shrinks).
    @usableFromInline var idle: Deque<Int>

    /// Slot indices in state `.empty`.
    @usableFromInline var emptySlots: [Int]

    @usableFromInline var counts: Counts

    @usableFromInline var waiters: WaiterQueue

    @usableFromInline var lifecycle: Lifecycle

    @usableFromInline var creation: CreationState

    /// Wake-ups already requested from the shell and not yet fired. Invariant: every future deadline the machine
    /// cares about has a pending wake-up at or before it.
    @usableFromInline var pendingWakeups: Heap<Instant>

    /// Incremented by `invalidateAllRequested`; resources created under an older generation are replaced.
    @usableFromInline var generation: Int

    /// Work for the shell, in order.
    @usableFromInline var actions: Deque<Action>

    /// How many resources may be leased at once: `configuration.maximumSize`, unless self-sizing moved it (see
    /// `PoolStateMachine+SelfSizing.swift`). Leases and creations stop at it; resources above it stay idle.
    @usableFromInline var effectiveMaximum: Int

    // MARK: Init

    @usableFromInline
    init(configuration: Configuration) {
        self.configuration = configuration
        self.slots = Array(repeating: Slot(), count: configuration.maximumSize)
        self.idle = Deque(minimumCapacity: configuration.maximumSize)
        self.emptySlots = Array((0..<configuration.maximumSize).reversed())
        self.counts = Counts()
        self.waiters = WaiterQueue()
        self.lifecycle = .running
        self.creation = CreationState()
        self.pendingWakeups = Heap()
        self.generation = 0
        self.actions = Deque(minimumCapacity: 16)
        self.effectiveMaximum = configuration.maximumSize
    }

    /// Takes the next action for the shell to carry out, oldest first.
    @inlinable
    mutating func popAction() -> Action? {
        if self.actions.isEmpty { return nil }
        return self.actions.removeFirst()
    }

    /// Takes every pending action (for tests and cold paths).
    mutating func drainActions() -> [Action] {
        var result: [Action] = []
        while let action = self.popAction() { result.append(action) }
        return result
    }
}

// MARK: - Nested types

extension PoolStateMachine {
    /// The validated settings the machine works with (see `ResourcePoolConfiguration` for their meaning).
    @usableFromInline
    struct Configuration: Sendable, Equatable {
        var minimumSize: Int
        var maximumSize: Int
        var maximumConcurrentCreations: Int
        var maximumWaiters: Int?
        var idleTimeout: Duration?
        var maximumLifetime: Duration?
        /// Fraction in `0...1`: each resource's lifetime is shortened by up to this share of `maximumLifetime`.
        var maximumLifetimeJitter: Double
        var keepAliveInterval: Duration?
        /// Validate a resource before its lease when it has been idle at least this long; `nil` never validates.
        var validationIdleThreshold: Duration?
        var leakThreshold: Duration?
        var backoffInitial: Duration
        var backoffMultiplier: Double
        var backoffMaximum: Duration
        /// Fraction in `0...1`: each delay is multiplied by a factor in `1 - jitter ..< 1 + jitter`.
        var backoffJitter: Double
        /// Consecutive creation failures (with no open resource) after which the breaker opens; `nil` never opens.
        var circuitBreakerThreshold: Int?

        init(
            minimumSize: Int = 0,
            maximumSize: Int = 4,
            maximumConcurrentCreations: Int = 2,
            maximumWaiters: Int? = nil,
            idleTimeout: Duration? = nil,
            maximumLifetime: Duration? = nil,
            maximumLifetimeJitter: Double = 0,
            keepAliveInterval: Duration? = nil,
            validationIdleThreshold: Duration? = nil,
            leakThreshold: Duration? = nil,
            backoffInitial: Duration = .milliseconds(100),
            backoffMultiplier: Double = 2,
            backoffMaximum: Duration = .seconds(10),
            backoffJitter: Double = 0,
            circuitBreakerThreshold: Int? = nil
        ) {
            self.minimumSize = minimumSize
            self.maximumSize = maximumSize
            self.maximumConcurrentCreations = maximumConcurrentCreations
            self.maximumWaiters = maximumWaiters
            self.idleTimeout = idleTimeout
            self.maximumLifetime = maximumLifetime
            self.maximumLifetimeJitter = maximumLifetimeJitter
            self.keepAliveInterval = keepAliveInterval
            self.validationIdleThreshold = validationIdleThreshold
            self.leakThreshold = leakThreshold
            self.backoffInitial = backoffInitial
            self.backoffMultiplier = backoffMultiplier
            self.backoffMaximum = backoffMaximum
            self.backoffJitter = backoffJitter
            self.circuitBreakerThreshold = circuitBreakerThreshold
        }
    }

    /// What the machine knows about one resource slot.
    @usableFromInline
    struct Slot: Sendable, Equatable {
        @usableFromInline
        enum State: Sendable, Equatable {
            /// No resource. Moves to `.creating`.
            case empty
            /// A creation is in flight. Moves to `.idle` or `.leased` (`resourceCreated`), `.closing` (created while
            /// shutting down or invalidated), or `.empty` (`creationFailed`).
            case creating
            /// Ready in the idle deque. Moves to `.leased`, `.keepingAlive` or `.closing`.
            case idle
            /// Held by a lease. Moves to `.idle` or `.leased` again (released and handed on) or `.closing`.
            case leased
            /// A keep-alive check is running. Moves to `.idle` or `.leased` (`keepAliveFinished`) or `.closing`.
            case keepingAlive
            /// A close is in flight; the slot still counts toward the maximum. Moves to `.empty` (`resourceClosed`).
            case closing
        }

        @usableFromInline var state: State = .empty
        @usableFromInline var createdAt: Instant = .zero
        /// When the resource reaches its (jittered) maximum lifetime; `nil` when lifetimes are unlimited.
        @usableFromInline var expiresAt: Instant?
        /// When the resource last became idle (or was created).
        @usableFromInline var idleSince: Instant = .zero
        /// When the resource was last proven alive (created, released, or a keep-alive succeeded).
        @usableFromInline var lastAliveAt: Instant = .zero
        @usableFromInline var leasedAt: Instant = .zero
        @usableFromInline var useCount: Int = 0
        /// The pool generation the resource was created under (see `invalidateAllRequested`).
        @usableFromInline var generation: Int = 0
        @usableFromInline var leakReported: Bool = false
        /// Someone asked for every idle resource to be validated before its next lease.
        @usableFromInline var validationRequested: Bool = false

        @usableFromInline init() {}
    }

    /// How many slots are in each state, kept up to date on every transition.
    @usableFromInline
    struct Counts: Sendable, Equatable {
        @usableFromInline var creating = 0
        @usableFromInline var leased = 0
        @usableFromInline var keepingAlive = 0
        @usableFromInline var closing = 0
        @usableFromInline init() {}
    }

    /// The pool's phase.
    @usableFromInline
    enum Lifecycle: Sendable, Equatable {
        /// Serving leases. Moves to `.draining` or `.stopping`.
        case running
        /// Graceful shutdown: no new leases, outstanding ones may finish until the deadline. Moves to `.stopping`
        /// (deadline passed or forced) or `.stopped` (everything closed).
        case draining(deadline: Instant)
        /// Forced shutdown: waiting only for in-flight creations, closes and keep-alives. Moves to `.stopped`.
        case stopping
        /// Shut down; `shutdownCompleted` was emitted. Leases still out are closed when they come back.
        case stopped
    }

    /// Creation health: backoff and the circuit breaker.
    @usableFromInline
    struct CreationState: Sendable, Equatable {
        /// Creation failures since the last success.
        @usableFromInline var consecutiveFailures = 0
        /// No new creation starts before this instant while failing.
        @usableFromInline var retryAt: Instant?
        @usableFromInline var circuitBreakerOpen = false
        @usableFromInline init() {}
    }

    /// Why a resource is closed. Stable names for logs and metrics.
    @usableFromInline
    enum EvictionReason: String, Sendable, Equatable, CaseIterable {
        case idleTimeout = "idle_timeout"
        case maximumLifetime = "max_lifetime"
        case validationFailed = "validation_failed"
        case keepAliveFailed = "keep_alive_failed"
        case discarded = "discarded"
        case invalidated = "invalidated"
        case leaked = "leaked"
        case shutdown = "shutdown"
    }

    /// Why an acquire ends without a lease: a request turned away at once (``LeaseRequestedAction/reject(_:)``:
    /// any reason but `timedOut`) or a queued waiter failed (``Action/fail(_:_:)``: any reason but
    /// `tooManyWaiters`). The raw value is the `reason` dimension of `reservoir.pool.rejections`.
    @usableFromInline
    enum AcquireFailure: String, Sendable, Equatable {
        case tooManyWaiters = "too_many_waiters"
        case circuitBreakerOpen = "circuit_breaker_open"
        case shuttingDown = "shutting_down"
        case timedOut = "timed_out"

        /// The reasons a request can be turned away at once.
        static let rejectionReasons: [AcquireFailure] = [.tooManyWaiters, .circuitBreakerOpen, .shuttingDown]
    }

    /// A resource handed to a lease holder, with what the before-lease hook needs to know.
    @usableFromInline
    struct Grant: Sendable, Equatable {
        @usableFromInline var slot: Int
        /// Whether the before-lease validation must run.
        @usableFromInline var validate: Bool
        @usableFromInline var idleDuration: Duration
        @usableFromInline var age: Duration
        /// Leases of this resource before this one.
        @usableFromInline var useCount: Int
        @usableFromInline var validationRequested: Bool

        @usableFromInline
        init(slot: Int, validate: Bool, idleDuration: Duration, age: Duration, useCount: Int,
             validationRequested: Bool) {
            self.slot = slot
            self.validate = validate
            self.idleDuration = idleDuration
            self.age = age
            self.useCount = useCount
            self.validationRequested = validationRequested
        }
    }

    /// Work the shell must carry out.
    @usableFromInline
    enum Action: Sendable, Equatable {
        /// Indicates that a queued waiter must be resumed with a lease of the resource in the grant; `payload` is
        /// what the shell attached to the waiter's queue entry.
        case resume(WaiterID, Grant, payload: WaiterPayload? = nil)
        /// Indicates that a queued waiter must be failed; `payload` is what the shell attached to its queue entry.
        case fail(WaiterID, AcquireFailure, payload: WaiterPayload? = nil)
        /// Indicates that a resource must be created for the slot (then `resourceCreated` or `creationFailed`).
        case create(slot: Int)
        /// Indicates that the slot's resource must be closed (then `resourceClosed`).
        case close(slot: Int, reason: EvictionReason)
        /// Indicates that the slot's idle resource must be checked (then `keepAliveFinished`).
        case keepAlive(slot: Int)
        /// Indicates that `timerFired` must be called at (or after) this instant.
        case scheduleWakeup(at: Instant)
        /// Indicates that a lease has been held longer than the leak threshold (reported once per lease).
        case reportLeakSuspected(slot: Int, heldFor: Duration)
        /// Indicates that a lease reported as suspected leak came back.
        case reportLeakRecovered(slot: Int, heldFor: Duration)
        /// Indicates that the circuit breaker opened: creation keeps failing and no resource is open.
        case circuitBreakerOpened
        /// Indicates that the circuit breaker closed after a successful creation.
        case circuitBreakerClosed
        /// Indicates that shutdown is complete: the shell may end `run()`.
        case shutdownCompleted
    }
}
