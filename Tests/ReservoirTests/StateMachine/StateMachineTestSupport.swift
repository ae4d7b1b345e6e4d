@testable import Reservoir

typealias Machine = PoolStateMachine

extension PoolStateMachine {
    /// A machine with test-friendly defaults.
    static func make(_ configure: (inout Configuration) -> Void = { _ in }) -> PoolStateMachine {
        var configuration = Configuration(minimumSize: 0, maximumSize: 2, maximumConcurrentCreations: 2)
        configure(&configuration)
        return PoolStateMachine(configuration: configuration)
    }

    /// Requests a lease and expects to wait; returns the waiter id.
    mutating func expectWait(now: Duration = .zero, deadline: Duration? = nil) -> WaiterID? {
        if case .wait(let id) = self.leaseRequested(now: now, deadline: deadline) { return id }
        return nil
    }

    /// Puts `count` idle resources in slots `0..<count`, created at `now`, without side effects (no minimum-size
    /// creations, no timers), so that tests start from a known state.
    mutating func warmUp(_ count: Int, now: Duration = .zero) {
        for _ in 0..<count {
            let slot = self.emptySlots.removeLast()
            self.slots[slot] = Slot()
            self.slots[slot].state = .idle
            self.slots[slot].generation = self.generation
            self.slots[slot].createdAt = now
            self.slots[slot].idleSince = now
            self.slots[slot].lastAliveAt = now
            self.slots[slot].expiresAt = self.configuration.maximumLifetime.map { now + $0 }
            self.idle.append(slot)
        }
    }

    func grant(slot: Int, idle: Duration = .zero, age: Duration = .zero, useCount: Int = 0,
               validate: Bool = false, requested: Bool = false) -> Grant {
        Grant(slot: slot, validate: validate, idleDuration: idle, age: age, useCount: useCount,
              validationRequested: requested)
    }
}
