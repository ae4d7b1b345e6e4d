import DequeModule
import HeapModule

extension PoolStateMachine {
    /// Graceful shutdown was requested: waiters fail, idle resources close, new requests are rejected, and
    /// outstanding leases may finish until `now + timeout`; after that the shutdown is forced.
    mutating func drainRequested(now: Instant, timeout: Duration) {
        switch self.lifecycle {
        case .running:
            let deadline = now + timeout
            self.lifecycle = .draining(deadline: deadline)
            self.failAllWaiters()
            self.closeAllIdle()
            self.ensureWakeup(at: deadline)
            self.checkShutdownCompleted()
        case .draining, .stopping, .stopped:
            return
        }
    }

    /// Forced shutdown was requested: like a drain without waiting for outstanding leases (they are closed when
    /// they come back). Completes once in-flight creations, closes and keep-alives have finished.
    mutating func forcedShutdownRequested() {
        switch self.lifecycle {
        case .running, .draining:
            self.lifecycle = .stopping
            self.failAllWaiters()
            self.closeAllIdle()
            self.checkShutdownCompleted()
        case .stopping, .stopped:
            return
        }
    }

    /// Emits `.shutdownCompleted` once, when nothing the shutdown waits for is left.
    @usableFromInline
    mutating func checkShutdownCompleted() {
        let counts = self.counts
        switch self.lifecycle {
        case .running, .stopped:
            return
        case .draining:
            guard counts.creating + counts.leased + counts.keepingAlive + counts.closing == 0, self.idle.isEmpty
            else { return }
        case .stopping:
            guard counts.creating + counts.keepingAlive + counts.closing == 0, self.idle.isEmpty else { return }
        }
        self.lifecycle = .stopped
        self.actions.append(.shutdownCompleted)
    }

    private mutating func failAllWaiters() {
        for waiter in self.waiters.removeAll() {
            self.actions.append(.fail(waiter.id, .shuttingDown, payload: waiter.payload))
        }
    }

    private mutating func closeAllIdle() {
        while let slot = self.idle.popFirst() {
            self.beginClose(slot, reason: .shutdown)
        }
    }
}
