import DequeModule
import HeapModule

extension PoolStateMachine {
    /// A creation finished with a resource.
    ///
    /// - Parameters:
    ///   - slot: the slot the creation was started for.
    ///   - now: the current time.
    ///   - lifetimeJitter: a unit value in `0..<1` that shortens this resource's maximum lifetime by up to
    ///     `maximumLifetimeJitter` of it, so resources created together do not expire together.
    mutating func resourceCreated(slot: Int, now: Instant, lifetimeJitter: Double) {
        self.creation.consecutiveFailures = 0
        self.creation.retryAt = nil
        if self.creation.circuitBreakerOpen {
            self.creation.circuitBreakerOpen = false
            self.actions.append(.circuitBreakerClosed)
        }
        self.slots[slot].createdAt = now
        self.slots[slot].idleSince = now
        self.slots[slot].lastAliveAt = now
        self.slots[slot].useCount = 0
        self.slots[slot].leakReported = false
        self.slots[slot].validationRequested = false
        if let maximumLifetime = self.configuration.maximumLifetime {
            let shortening = maximumLifetime * (self.configuration.maximumLifetimeJitter * Self.unit(lifetimeJitter))
            self.slots[slot].expiresAt = now + maximumLifetime - shortening
        } else {
            self.slots[slot].expiresAt = nil
        }
        self.setState(slot, .idle)
        self.returnToService(slot, now: now, discardReason: nil)
        self.startCreationsIfNeeded(now: now)
    }

    /// A creation failed.
    ///
    /// The next attempt waits `min(initial × multiplier^(failures − 1), maximum)`, scaled by a factor in
    /// `1 − jitter ..< 1 + jitter` drawn from `backoffJitter`; while failing, one creation runs at a time. When the
    /// failures reach the circuit-breaker threshold and no resource is open, the breaker opens: every waiter fails at
    /// once and new requests are rejected until a creation succeeds.
    ///
    /// - Parameters:
    ///   - slot: the slot the creation was started for.
    ///   - now: the current time.
    ///   - backoffJitter: a unit value in `0..<1`.
    ///   - permanent: whether the failure cannot be fixed by retrying (a wrong password): the breaker then opens at
    ///     once, as if the threshold were reached.
    mutating func creationFailed(slot: Int, now: Instant, backoffJitter: Double, permanent: Bool = false) {
        self.setState(slot, .empty)
        self.emptySlots.append(slot)
        self.creation.consecutiveFailures += 1
        self.creation.retryAt = now + self.backoffDelay(
            afterFailures: self.creation.consecutiveFailures,
            jitter: backoffJitter
        )
        self.openCircuitBreakerIfNeeded(permanentFailure: permanent)
        self.startCreationsIfNeeded(now: now)
        self.checkShutdownCompleted()
    }

    /// A close finished (successfully or not: the slot is free either way).
    mutating func resourceClosed(slot: Int, now: Instant) {
        self.setState(slot, .empty)
        self.emptySlots.append(slot)
        self.openCircuitBreakerIfNeeded()
        self.startCreationsIfNeeded(now: now)
        self.checkShutdownCompleted()
    }

    /// The backoff before the next creation attempt after `failures` consecutive failures.
    func backoffDelay(afterFailures failures: Int, jitter: Double) -> Duration {
        let configuration = self.configuration
        var delay = configuration.backoffInitial
        var step = 1
        while step < failures && delay < configuration.backoffMaximum {
            delay = delay * configuration.backoffMultiplier
            step += 1
        }
        if delay > configuration.backoffMaximum { delay = configuration.backoffMaximum }
        let factor = 1 - configuration.backoffJitter + 2 * configuration.backoffJitter * Self.unit(jitter)
        // Whole nanoseconds, so that schedules are exact and comparable.
        return .nanoseconds(Int64((Double(delay.clampedNanoseconds) * factor).rounded()))
    }

    /// Starts as many creations as the minimum size and the waiting demand need, within the maximum size, the cap on
    /// concurrent creations, and the backoff.
    ///
    /// Demand counts only what cannot be served soon: a waiter is covered by a creation in flight or by a resource
    /// whose keep-alive check is running. Leased resources are not counted: nobody knows when they come back.
    @usableFromInline
    mutating func startCreationsIfNeeded(now: Instant) {
        switch self.lifecycle {
        case .running: break
        case .draining, .stopping, .stopped: return
        }
        let minimumDeficit = self.configuration.minimumSize - self.liveCount
        var demand = self.waiters.count - self.counts.creating - self.counts.keepingAlive
        if self.effectiveMaximum < self.configuration.maximumSize {
            // Self-sizing: create only what the effective maximum lets waiters lease.
            let room = self.effectiveMaximum - self.counts.leased - self.idle.count - self.counts.creating
                - self.counts.keepingAlive
            demand = min(demand, room)
        }
        var needed = max(minimumDeficit, demand, 0)
        if self.creation.circuitBreakerOpen && self.counts.creating == 0 {
            // Keep probing while the breaker is open, even without demand, so that it can close.
            needed = max(needed, 1)
        }
        guard needed > 0, !self.emptySlots.isEmpty else { return }
        let failing = self.creation.consecutiveFailures > 0
        if failing, let retryAt = self.creation.retryAt, now < retryAt {
            self.ensureWakeup(at: retryAt)
            return
        }
        let concurrency = (failing ? 1 : self.configuration.maximumConcurrentCreations) - self.counts.creating
        let count = min(needed, concurrency, self.emptySlots.count)
        guard count > 0 else { return }
        for _ in 0..<count {
            let slot = self.emptySlots.removeLast()
            self.slots[slot] = Slot()
            self.slots[slot].generation = self.generation
            self.setState(slot, .creating)
            self.actions.append(.create(slot: slot))
        }
    }

    mutating func openCircuitBreakerIfNeeded(permanentFailure: Bool = false) {
        guard let threshold = self.configuration.circuitBreakerThreshold,
            !self.creation.circuitBreakerOpen,
            permanentFailure || self.creation.consecutiveFailures >= threshold,
            self.openCount == 0
        else { return }
        self.creation.circuitBreakerOpen = true
        self.actions.append(.circuitBreakerOpened)
        for waiter in self.waiters.removeAll() {
            self.actions.append(.fail(waiter.id, .circuitBreakerOpen, payload: waiter.payload))
        }
    }

    /// Clamps an injected random value into `0...1` so that a faulty generator cannot produce negative delays.
    static func unit(_ value: Double) -> Double {
        guard value.isFinite else { return 0 }
        return min(max(value, 0), 1)
    }
}
