import DequeModule
import HeapModule

extension PoolStateMachine {
    /// What a lease request gets at once.
    @usableFromInline
    enum LeaseRequestedAction: Sendable, Equatable {
        /// Indicates that an idle resource was leased to the caller.
        case leased(Grant)
        /// Indicates that the caller must wait in the queue under this id (until `.resume` or `.fail`).
        case wait(WaiterID)
        /// Indicates that the request is turned away without waiting.
        case reject(AcquireFailure)
    }

    /// A caller asked for a resource.
    ///
    /// - Parameters:
    ///   - now: the current time.
    ///   - deadline: when the caller stops waiting; `nil` waits until cancelled.
    ///   - retry: the caller's previous resource failed validation: it keeps its turn (queued ahead of first-time
    ///     waiters, not subject to `maximumWaiters`).
    @usableFromInline
    mutating func leaseRequested(now: Instant, deadline: Instant?, retry: Bool = false) -> LeaseRequestedAction {
        switch self.lifecycle {
        case .running:
            break
        case .draining, .stopping, .stopped:
            return .reject(.shuttingDown)
        }
        var closedAny = false
        // Self-sizing: at the effective maximum, callers wait even with idle resources (never true without it: idle
        // resources then mean fewer than the maximum are leased).
        while self.counts.leased < self.effectiveMaximum, let slot = self.idle.popLast() {
            if let expiresAt = self.slots[slot].expiresAt, expiresAt <= now {
                self.beginClose(slot, reason: .maximumLifetime)
                closedAny = true
                continue
            }
            if closedAny { self.startCreationsIfNeeded(now: now) }
            return .leased(self.grant(slot, now: now))
        }
        if self.creation.circuitBreakerOpen {
            self.startCreationsIfNeeded(now: now)
            return .reject(.circuitBreakerOpen)
        }
        if !retry, let maximumWaiters = self.configuration.maximumWaiters, self.waiters.count >= maximumWaiters {
            if closedAny { self.startCreationsIfNeeded(now: now) }
            return .reject(.tooManyWaiters)
        }
        let id = self.waiters.enqueue(now: now, deadline: deadline, retry: retry)
        if let deadline { self.ensureWakeup(at: deadline) }
        self.startCreationsIfNeeded(now: now)
        return .wait(id)
    }

    /// A lease ended.
    ///
    /// - Parameters:
    ///   - slot: the leased slot.
    ///   - now: the current time.
    ///   - discardReason: `nil` to keep the resource, otherwise why it must be closed.
    /// - Returns: how long the lease was held.
    @usableFromInline
    mutating func leaseReleased(slot: Int, now: Instant, discardReason: EvictionReason?) -> Duration {
        let heldFor = now - self.slots[slot].leasedAt
        if self.slots[slot].leakReported {
            self.actions.append(.reportLeakRecovered(slot: slot, heldFor: heldFor))
        }
        self.setState(slot, .idle)
        self.slots[slot].idleSince = now
        self.slots[slot].lastAliveAt = now
        self.returnToService(slot, now: now, discardReason: discardReason)
        return heldFor
    }

    /// The resource of a lease failed the before-lease check (or the check threw) before the caller got it: it is
    /// closed (``EvictionReason/validationFailed``) and replaced, and the caller asks again.
    ///
    /// - Returns: how long the pool held the resource for the check.
    @usableFromInline
    @discardableResult
    mutating func validationFailed(slot: Int, now: Instant) -> Duration {
        self.leaseReleased(slot: slot, now: now, discardReason: .validationFailed)
    }

    /// A waiter left the queue because its task was cancelled.
    ///
    /// - Returns: `true` when it was still queued; `false` when it had already been resumed or failed.
    @usableFromInline
    mutating func waiterCancelled(_ id: WaiterID) -> Bool {
        self.waiters.remove(id) != nil
    }

    /// The shell could not hand a granted resource to its waiter (the waiter was cancelled in between): the
    /// resource goes back into service as if it had not been leased.
    @usableFromInline
    mutating func handoffFailed(slot: Int, now: Instant) {
        self.slots[slot].useCount -= 1
        self.setState(slot, .idle)
        self.returnToService(slot, now: now, discardReason: nil)
    }

    /// A lease was dropped without being released (an exact leak): its resource is closed and replaced.
    ///
    /// - Returns: how long the lease was held.
    @usableFromInline
    mutating func leaseLeaked(slot: Int, now: Instant) -> Duration {
        let heldFor = now - self.slots[slot].leasedAt
        self.setState(slot, .idle)
        self.returnToService(slot, now: now, discardReason: .leaked)
        return heldFor
    }

    /// Someone saw a failure that may affect every resource (for example a connection error): every idle resource is
    /// validated before its next lease.
    @usableFromInline
    mutating func idleValidationRequested() {
        for slot in self.idle {
            self.slots[slot].validationRequested = true
        }
    }

    // MARK: Helpers

    /// Marks an idle slot (already taken out of the idle deque) as leased and describes it.
    @usableFromInline
    mutating func grant(_ slot: Int, now: Instant) -> Grant {
        let idleDuration = now - self.slots[slot].idleSince
        let requested = self.slots[slot].validationRequested
        var validate = requested
        if let threshold = self.configuration.validationIdleThreshold, idleDuration >= threshold {
            validate = true
        }
        let grant = Grant(
            slot: slot,
            validate: validate,
            idleDuration: idleDuration,
            age: now - self.slots[slot].createdAt,
            useCount: self.slots[slot].useCount,
            validationRequested: requested
        )
        self.setState(slot, .leased)
        self.slots[slot].leasedAt = now
        self.slots[slot].useCount += 1
        self.slots[slot].leakReported = false
        self.slots[slot].validationRequested = false
        if let leakThreshold = self.configuration.leakThreshold {
            self.ensureWakeup(at: now + leakThreshold)
        }
        return grant
    }

    /// Puts a slot whose state was just set to `.idle` (but which is not in the idle deque) back into service: it is
    /// closed when it must be, handed to the longest waiter, or parked as idle.
    @usableFromInline
    mutating func returnToService(_ slot: Int, now: Instant, discardReason: EvictionReason?) {
        if let discardReason {
            self.beginClose(slot, reason: discardReason)
            self.startCreationsIfNeeded(now: now)
            self.checkShutdownCompleted()
            return
        }
        switch self.lifecycle {
        case .running:
            break
        case .draining, .stopping, .stopped:
            self.beginClose(slot, reason: .shutdown)
            self.checkShutdownCompleted()
            return
        }
        if self.slots[slot].generation != self.generation {
            self.beginClose(slot, reason: .invalidated)
            self.startCreationsIfNeeded(now: now)
            return
        }
        if let expiresAt = self.slots[slot].expiresAt, expiresAt <= now {
            self.beginClose(slot, reason: .maximumLifetime)
            self.startCreationsIfNeeded(now: now)
            return
        }
        if self.counts.leased < self.effectiveMaximum, let waiter = self.waiters.dequeue() {
            self.actions.append(.resume(waiter.id, self.grant(slot, now: now), payload: waiter.payload))
            return
        }
        self.idle.append(slot)
        if let deadline = self.nextDeadline(ofIdle: slot) {
            self.ensureWakeup(at: deadline)
        }
    }

    /// Moves a slot to a new state and keeps `counts` right. Idle and empty slots are counted by their collections.
    @usableFromInline
    mutating func setState(_ slot: Int, _ new: Slot.State) {
        self.adjustCount(for: self.slots[slot].state, by: -1)
        self.adjustCount(for: new, by: 1)
        self.slots[slot].state = new
    }

    @usableFromInline
    mutating func adjustCount(for state: Slot.State, by delta: Int) {
        switch state {
        case .empty, .idle: break
        case .creating: self.counts.creating += delta
        case .leased: self.counts.leased += delta
        case .keepingAlive: self.counts.keepingAlive += delta
        case .closing: self.counts.closing += delta
        }
    }

    /// Starts closing a slot that is not in the idle deque.
    @usableFromInline
    mutating func beginClose(_ slot: Int, reason: EvictionReason) {
        self.setState(slot, .closing)
        self.actions.append(.close(slot: slot, reason: reason))
    }

    /// Resources that are open or about to be (everything but closing and empty slots).
    var liveCount: Int {
        self.counts.creating + self.idle.count + self.counts.leased + self.counts.keepingAlive
    }

    /// Resources that are open.
    var openCount: Int {
        self.idle.count + self.counts.leased + self.counts.keepingAlive
    }
}
