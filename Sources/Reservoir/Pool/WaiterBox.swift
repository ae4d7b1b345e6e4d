import CoreMetrics
import DequeModule
import Logging
import Synchronization

/// The hand-off point between a waiting caller and the pool.
///
/// It carries everything the waiter needs once served (the resource, the grant and the deadline to reuse if the
/// resource fails validation), so that the woken task does not take the pool's lock again. It is the payload of the
/// waiter's entry in the state machine's queue (``PoolStateMachine/WaiterPayload``), attached in the locked section
/// that queued the waiter and handed back by `.resume` or `.fail`: the waiter's one record, with no second table.
///
/// A Task's cancellation handler runs synchronously, on any thread, so each waiter gets this small lock-protected
/// box that the handler can resolve without touching the pool's state. Exactly one of two parties resolves it: the
/// pool (grant or failure, claimed under the pool's lock and resumed after it), or the cancellation handler. The
/// continuation is resumed exactly once on every path:
///
/// 1. Grant or failure first: the continuation resumes with it; a later cancel finds `.finished` and does nothing.
/// 2. Cancel first, after the continuation was installed: it resumes with `CancellationError`; the pool's later
///    grant fails (`claim` returns `nil`) and the pool puts the resource back into service.
/// 3. Cancel before the continuation was installed (the task was already cancelled): the box remembers, and
///    `install` resumes at once with `CancellationError`.
@usableFromInline
final class WaiterBox<Resource: Sendable>: Sendable {
    @usableFromInline typealias Continuation = UnsafeContinuation<AcquiredResource<Resource>, any Error>

    @usableFromInline
    enum State {
        case pending
        case waiting(Continuation)
        case resolvedEarly(Result<AcquiredResource<Resource>, any Error>)
        case cancelledEarly
        case finished
    }

    @usableFromInline let id: PoolStateMachine.WaiterID
    @usableFromInline let site: AcquireSite
    @usableFromInline let enqueuedAt: Duration
    /// The waiter's deadline (a duration since the pool's epoch), handed back with its resource.
    @usableFromInline let deadline: Duration?
    /// Whether the waiter queued while `run()` had not started: then no timer of `run()` bounds its wait, and the
    /// waiting task keeps its own (see `ResourcePool.watchWaiterBeforeRun`).
    @usableFromInline let enqueuedBeforeRun: Bool
    /// Protected by its own lock; every transition happens inside it, every resume outside it.
    @usableFromInline let state = Mutex<State>(.pending)

    @usableFromInline
    init(
        id: PoolStateMachine.WaiterID,
        site: AcquireSite,
        enqueuedAt: Duration,
        deadline: Duration?,
        enqueuedBeforeRun: Bool
    ) {
        self.id = id
        self.site = site
        self.enqueuedAt = enqueuedAt
        self.deadline = deadline
        self.enqueuedBeforeRun = enqueuedBeforeRun
    }

    /// Called by the waiting task, synchronously after enqueueing.
    @inlinable
    func install(_ continuation: Continuation) {
        let early: Result<AcquiredResource<Resource>, any Error>? = self.state.withLock { state in
            switch state {
            case .pending:
                state = .waiting(continuation)
                return nil
            case .resolvedEarly(let result):
                state = .finished
                return result
            case .cancelledEarly:
                state = .finished
                return .failure(CancellationError())
            case .waiting, .finished:
                preconditionFailure("a waiter's continuation was installed twice")
            }
        }
        if let early { continuation.resume(with: early) }
    }

    /// Called by the pool, under its lock: claims the waiter for `result`.
    ///
    /// - Returns: `nil` when the waiter was cancelled first (nothing to resume); otherwise the resume to perform once
    ///   the pool's lock is released (empty when the continuation is not installed yet: `install` resumes it).
    @inlinable
    func claim(_ result: Result<AcquiredResource<Resource>, any Error>) -> PendingResume<Resource>? {
        self.state.withLock { state in
            switch state {
            case .pending:
                state = .resolvedEarly(result)
                return PendingResume(continuation: nil, result: result)
            case .waiting(let continuation):
                state = .finished
                return PendingResume(continuation: continuation, result: result)
            case .cancelledEarly, .resolvedEarly, .finished:
                return nil
            }
        }
    }

    /// Called by the task's cancellation handler, on any thread.
    @inlinable
    func cancel() {
        let continuation: Continuation? = self.state.withLock { state in
            switch state {
            case .pending:
                state = .cancelledEarly
                return nil
            case .waiting(let continuation):
                state = .finished
                return continuation
            case .cancelledEarly, .resolvedEarly, .finished:
                return nil
            }
        }
        continuation?.resume(throwing: CancellationError())
    }
}

/// A waiter's continuation and what to resume it with, collected under the pool's lock and resumed after it.
@usableFromInline
struct PendingResume<Resource: Sendable>: Sendable {
    @usableFromInline let continuation: WaiterBox<Resource>.Continuation?
    @usableFromInline let result: Result<AcquiredResource<Resource>, any Error>

    @inlinable
    init(continuation: WaiterBox<Resource>.Continuation?, result: Result<AcquiredResource<Resource>, any Error>) {
        self.continuation = continuation
        self.result = result
    }

    @inlinable
    func resume() {
        self.continuation?.resume(with: self.result)
    }
}

/// The resumes one locked section collected: almost always none or one, so the first is stored inline and only
/// further ones allocate.
@usableFromInline
struct PendingResumes<Resource: Sendable>: Sendable {
    @usableFromInline var first: PendingResume<Resource>?
    /// `nil` until a second resume comes (an empty array would still cost reference counting).
    @usableFromInline var more: [PendingResume<Resource>]? = nil

    @inlinable
    init() {}

    @inlinable
    mutating func append(_ resume: PendingResume<Resource>) {
        // A pattern, not `== nil`, which would copy (and retain) the first resume to compare it.
        if case .none = self.first {
            self.first = resume
        } else {
            self.appendMore(resume)
        }
    }

    /// Keeps a second or later resume.
    @usableFromInline
    mutating func appendMore(_ resume: PendingResume<Resource>) {
        if case .none = self.more {
            self.more = [resume]
        } else {
            self.more!.append(resume)
        }
    }

    /// Resumes every collected waiter. Call it after the pool's lock is released.
    @inlinable
    func resumeAll() {
        guard let first = self.first else { return }
        first.resume()
        guard let more = self.more else { return }
        for resume in more { resume.resume() }
    }
}

/// The queue of background work that `run()` executes in child tasks.
///
/// A lock-protected queue rather than an `AsyncStream` because two synchronous handlers feed it too (Task
/// cancellation of `run()` and graceful shutdown), and because its consumer must keep going after `run()` is
/// cancelled: the forced shutdown still has resources to close.
@usableFromInline
final class JobQueue: Sendable {
    @usableFromInline
    enum Item: Sendable {
        case job(@Sendable () async -> Void)
        case drainRequested
        case forcedShutdownRequested
        case finish
    }

    private struct State {
        var items: Deque<Item> = []
        var consumer: UnsafeContinuation<Item, Never>?
    }

    /// Protects the items and the parked consumer.
    private let state = Mutex<State>(State())

    func push(_ item: Item) {
        let consumer: UnsafeContinuation<Item, Never>? = self.state.withLock { state in
            if let consumer = state.consumer {
                state.consumer = nil
                return consumer
            }
            state.items.append(item)
            return nil
        }
        consumer?.resume(returning: item)
    }

    /// The next item; suspends until there is one. Only `run()` calls it, so there is one consumer at a time.
    func next() async -> Item {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Item, Never>) in
            let item: Item? = self.state.withLock { state in
                if let item = state.items.popFirst() { return item }
                state.consumer = continuation
                return nil
            }
            if let item { continuation.resume(returning: item) }
        }
    }
}
