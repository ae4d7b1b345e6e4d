import DequeModule
import HeapModule

extension PoolStateMachine {
    /// A wake-up requested with `.scheduleWakeup` is due: waiter timeouts, the drain deadline, idle timeouts,
    /// maximum lifetimes, keep-alives, leak reports and creation retries are handled, and the next wake-up is
    /// requested.
    mutating func timerFired(now: Instant) {
        while let next = self.pendingWakeups.min, next <= now {
            self.pendingWakeups.removeMin()
        }
        for waiter in self.waiters.removeExpired(now: now) {
            self.actions.append(.fail(waiter.id, .timedOut, payload: waiter.payload))
        }
        switch self.lifecycle {
        case .running:
            self.closeExpiredIdleResources(now: now)
            self.closeIdleResourcesPastTimeout(now: now)
            self.startKeepAlives(now: now)
            self.reportSuspectedLeaks(now: now)
            self.startCreationsIfNeeded(now: now)
        case .draining(let deadline):
            self.reportSuspectedLeaks(now: now)
            if now >= deadline {
                self.lifecycle = .stopping
                self.checkShutdownCompleted()
            }
        case .stopping, .stopped:
            break
        }
        if let next = self.nextDeadline(now: now) {
            self.ensureWakeup(at: next)
        }
    }

    /// A keep-alive check finished.
    mutating func keepAliveFinished(slot: Int, now: Instant, succeeded: Bool) {
        self.setState(slot, .idle)
        if succeeded {
            self.slots[slot].lastAliveAt = now
            self.returnToService(slot, now: now, discardReason: nil)
        } else {
            self.returnToService(slot, now: now, discardReason: .keepAliveFailed)
        }
    }

    /// Every resource is to be replaced (for example after a failover): idle ones close now, leased ones when they
    /// come back, ones being created or checked when they finish.
    mutating func invalidateAllRequested(now: Instant) {
        self.generation += 1
        while let slot = self.idle.popFirst() {
            self.beginClose(slot, reason: .invalidated)
        }
        self.startCreationsIfNeeded(now: now)
    }

    // MARK: Wake-ups

    /// Requests a wake-up at `instant` unless one is already pending at or before it.
    @usableFromInline
    mutating func ensureWakeup(at instant: Instant) {
        if let earliest = self.pendingWakeups.min, earliest <= instant { return }
        self.pendingWakeups.insert(instant)
        self.actions.append(.scheduleWakeup(at: instant))
    }

    /// The earliest instant at which an idle slot needs attention.
    @usableFromInline
    func nextDeadline(ofIdle slot: Int) -> Instant? {
        let configuration = self.configuration
        var next = self.slots[slot].expiresAt
        if let interval = configuration.keepAliveInterval {
            next = Self.earliest(next, self.slots[slot].lastAliveAt + interval)
        }
        if let idleTimeout = configuration.idleTimeout, self.liveCount > configuration.minimumSize {
            next = Self.earliest(next, self.slots[slot].idleSince + idleTimeout)
        }
        return next
    }

    /// The earliest instant at which anything needs attention.
    mutating func nextDeadline(now: Instant) -> Instant? {
        var next = self.waiters.nextDeadline()
        switch self.lifecycle {
        case .running:
            for slot in self.idle {
                next = Self.earliest(next, self.nextDeadline(ofIdle: slot))
            }
            if self.creation.consecutiveFailures > 0, let retryAt = self.creation.retryAt, retryAt > now {
                next = Self.earliest(next, retryAt)
            }
        case .draining(let deadline):
            next = Self.earliest(next, deadline)
        case .stopping, .stopped:
            return next
        }
        if let leakThreshold = self.configuration.leakThreshold, self.counts.leased > 0 {
            for slot in self.slots.indices
            where self.slots[slot].state == .leased && !self.slots[slot].leakReported {
                next = Self.earliest(next, self.slots[slot].leasedAt + leakThreshold)
            }
        }
        return next
    }

    @usableFromInline
    static func earliest(_ lhs: Instant?, _ rhs: Instant?) -> Instant? {
        guard let lhs else { return rhs }
        guard let rhs else { return lhs }
        return min(lhs, rhs)
    }

    // MARK: Housekeeping steps

    private mutating func closeExpiredIdleResources(now: Instant) {
        guard self.configuration.maximumLifetime != nil else { return }
        let expired = self.idle.filter { slot in
            if let expiresAt = self.slots[slot].expiresAt { return expiresAt <= now }
            return false
        }
        guard !expired.isEmpty else { return }
        self.idle.removeAll { expired.contains($0) }
        for slot in expired {
            self.beginClose(slot, reason: .maximumLifetime)
        }
    }

    private mutating func closeIdleResourcesPastTimeout(now: Instant) {
        guard let idleTimeout = self.configuration.idleTimeout else { return }
        let candidates = self.idle
            .filter { self.slots[$0].idleSince + idleTimeout <= now }
            .sorted { self.slots[$0].idleSince < self.slots[$1].idleSince }
        var closing: [Int] = []
        for slot in candidates where self.liveCount - closing.count > self.configuration.minimumSize {
            closing.append(slot)
        }
        guard !closing.isEmpty else { return }
        self.idle.removeAll { closing.contains($0) }
        for slot in closing {
            self.beginClose(slot, reason: .idleTimeout)
        }
    }

    private mutating func startKeepAlives(now: Instant) {
        guard let interval = self.configuration.keepAliveInterval else { return }
        let due = self.idle.filter { self.slots[$0].lastAliveAt + interval <= now }
        guard !due.isEmpty else { return }
        self.idle.removeAll { due.contains($0) }
        for slot in due {
            self.setState(slot, .keepingAlive)
            self.actions.append(.keepAlive(slot: slot))
        }
    }

    private mutating func reportSuspectedLeaks(now: Instant) {
        guard let leakThreshold = self.configuration.leakThreshold, self.counts.leased > 0 else { return }
        for slot in self.slots.indices where self.slots[slot].state == .leased && !self.slots[slot].leakReported {
            let heldFor = now - self.slots[slot].leasedAt
            if heldFor >= leakThreshold {
                self.slots[slot].leakReported = true
                self.actions.append(.reportLeakSuspected(slot: slot, heldFor: heldFor))
            }
        }
    }
}
