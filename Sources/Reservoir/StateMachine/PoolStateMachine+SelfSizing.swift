extension PoolStateMachine {
    /// Self-sizing moved the effective maximum (see ``SelfSizingPolicy``).
    ///
    /// Raised: idle resources go to waiters up to the new limit, and creations start for the rest. Lowered: leases
    /// out stay out; no new lease is granted until fewer than the limit are leased, and resources above it stay
    /// idle until `idleTimeout` closes them (closing them at once would churn connections while the limit
    /// oscillates).
    ///
    /// - Parameters:
    ///   - limit: the new effective maximum, within `1...maximumSize`.
    ///   - now: the current time.
    mutating func effectiveMaximumChanged(to limit: Int, now: Instant) {
        self.effectiveMaximum = min(max(limit, 1), self.configuration.maximumSize)
        switch self.lifecycle {
        case .running: break
        case .draining, .stopping, .stopped: return
        }
        while self.counts.leased < self.effectiveMaximum, !self.waiters.isEmpty, let slot = self.idle.popLast() {
            if let expiresAt = self.slots[slot].expiresAt, expiresAt <= now {
                self.beginClose(slot, reason: .maximumLifetime)
                continue
            }
            guard let waiter = self.waiters.dequeue() else {
                self.idle.append(slot)
                break
            }
            self.actions.append(.resume(waiter.id, self.grant(slot, now: now), payload: waiter.payload))
        }
        self.startCreationsIfNeeded(now: now)
    }
}
