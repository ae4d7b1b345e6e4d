import DequeModule

/// The pure core of ``ConcurrencyLimiter``: how many operations are in flight, the FIFO queue of waiters, the limit.
///
/// The limit can change at run time (the adaptive limiter moves it); a lower limit takes effect as permits come
/// back, a higher one admits waiters at once.
@usableFromInline
struct ConcurrencyLimiterStateMachine<Waiter> {
    @usableFromInline
    enum AcquireAction {
        /// Indicates that the caller holds a permit now.
        case granted
        /// Indicates that the caller must wait; the id is for its waiter.
        case mustWait(id: UInt64)
        /// Indicates that the call fails at once (queue full, shut down).
        case failed(BackpressureError.Code)
    }

    @usableFromInline
    enum WaitAction {
        case granted
        case suspended
        case failed(BackpressureError.Code)
    }

    @usableFromInline var limit: Int
    @usableFromInline let maxQueueLength: Int
    @usableFromInline var inFlight: Int = 0
    @usableFromInline var waiters: Deque<(id: UInt64, token: Waiter)> = []
    @usableFromInline var isShutDown = false
    @usableFromInline var nextID: UInt64 = 0

    @inlinable
    init(limit: Int, maxQueueLength: Int) {
        self.limit = limit
        self.maxQueueLength = maxQueueLength
    }

    /// A caller asks for a permit.
    @inlinable
    mutating func acquire() -> AcquireAction {
        if isShutDown { return .failed(.limiterShutDown) }
        if inFlight < limit && waiters.isEmpty {
            inFlight += 1
            return .granted
        }
        if waiters.count >= maxQueueLength { return .failed(.queueFull) }
        nextID &+= 1
        return .mustWait(id: nextID)
    }

    /// A caller that must wait registers `token` (re-checking, since the state may have changed since `acquire`).
    ///
    /// `isCancelled` and `deadlinePassed` are read under the shell's lock: a cancellation, or the timer of a timed
    /// acquire, that came before the caller registered found no waiter to fail, so registration must see it.
    @inlinable
    mutating func acquireOrWait(
        id: UInt64,
        token: Waiter,
        isCancelled: Bool,
        deadlinePassed: Bool = false
    ) -> WaitAction {
        switch acquire() {
        case .granted: return .granted
        case .failed(let code): return .failed(code)
        case .mustWait:
            if isCancelled { return .failed(.cancelled) }
            if deadlinePassed { return .failed(.timedOut) }
            waiters.append((id, token))
            return .suspended
        }
    }

    /// A permit came back: it goes to the first waiter if the limit allows, otherwise in-flight drops.
    @inlinable
    mutating func released() -> Waiter? {
        if inFlight <= limit, let waiter = waiters.popFirst() {
            return waiter.token
        }
        inFlight -= 1
        return nil
    }

    /// A waiter gave up (cancelled or timed out). Returns its token if it was still waiting.
    @inlinable
    mutating func waiterCancelled(id: UInt64) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).token
    }

    /// The limit changed; returns the waiters admitted by a higher limit.
    @inlinable
    mutating func limitChanged(to newLimit: Int) -> OneOrMany<Waiter> {
        limit = newLimit
        var admitted = OneOrMany<Waiter>()
        while inFlight < limit, let waiter = waiters.popFirst() {
            inFlight += 1
            admitted.append(waiter.token)
        }
        return admitted
    }

    /// Shut down: every waiter fails, later calls fail.
    @inlinable
    mutating func shutDown() -> [Waiter] {
        isShutDown = true
        defer { waiters.removeAll() }
        return waiters.map(\.token)
    }
}

extension ConcurrencyLimiterStateMachine: Sendable where Waiter: Sendable {}
