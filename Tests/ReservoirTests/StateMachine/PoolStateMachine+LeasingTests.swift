import Testing

@testable import Reservoir

@Suite("PoolStateMachine: leasing")
struct PoolStateMachineLeasingTests {
    @Test("an idle resource is leased at once, most recently used first")
    func leasesIdleLIFO() {
        var machine = Machine.make()
        machine.warmUp(2)
        // Slot 1 was created last, so it is leased first.
        let value1 = machine.leaseRequested(now: .seconds(1), deadline: nil)
        #expect(value1
            == .leased(machine.grant(slot: 1, idle: .seconds(1), age: .seconds(1))))
        let value2 = machine.drainActions()
        #expect(value2 == [])
        #expect(machine.counts.leased == 1)
        #expect(machine.idle.count == 1)
    }

    @Test("a request with nothing idle waits and starts exactly one creation")
    func waitStartsCreation() {
        var machine = Machine.make()
        let value3 = machine.expectWait(deadline: .seconds(5))
        #expect(value3 == 1)
        let value4 = machine.drainActions()
        #expect(value4 == [.scheduleWakeup(at: .seconds(5)), .create(slot: 0)])
        #expect(machine.counts.creating == 1)
    }

    @Test("waiters are served in FIFO order as resources come back")
    func fifo() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        guard case .leased = machine.leaseRequested(now: .zero, deadline: nil) else {
            Issue.record("expected a lease")
            return
        }
        let first = machine.expectWait()
        let second = machine.expectWait()
        let third = machine.expectWait()
        _ = machine.drainActions()
        var order: [Machine.WaiterID] = []
        for now in 1...3 {
            _ = machine.leaseReleased(slot: 0, now: .seconds(now), discardReason: nil)
            for case .resume(let id, _, _) in machine.drainActions() { order.append(id) }
        }
        #expect(order == [first, second, third].compactMap { $0 })
    }

    @Test("growth stops at the maximum size and at the cap on concurrent creations")
    func growthIsCapped() {
        var machine = Machine.make {
            $0.maximumSize = 3
            $0.maximumConcurrentCreations = 2
        }
        for _ in 0..<5 { _ = machine.expectWait() }
        let value5 = machine.drainActions()
        #expect(value5 == [.create(slot: 0), .create(slot: 1)])
        machine.resourceCreated(slot: 0, now: .seconds(1), lifetimeJitter: 0)
        // The new resource serves the first waiter; one more creation may start (3 waiters left uncovered).
        let value6 = machine.drainActions()
        #expect(value6 == [
            .resume(1, machine.grant(slot: 0, idle: .zero, age: .zero)), .create(slot: 2),
        ])
        machine.resourceCreated(slot: 1, now: .seconds(1), lifetimeJitter: 0)
        machine.resourceCreated(slot: 2, now: .seconds(1), lifetimeJitter: 0)
        let actions = machine.drainActions()
        #expect(!actions.contains { if case .create = $0 { return true } else { return false } })
        #expect(machine.counts.leased == 3)
        #expect(machine.waiters.count == 2)
    }

    @Test("a waiter covered by a creation in flight does not start another")
    func demandCountsCreationsInFlight() {
        var machine = Machine.make { $0.maximumSize = 4 }
        _ = machine.expectWait()
        let value7 = machine.drainActions()
        #expect(value7 == [.create(slot: 0)])
        _ = machine.expectWait()
        let value8 = machine.drainActions()
        #expect(value8 == [.create(slot: 1)])
        // A cancelled waiter leaves demand at one: no third creation for the next request that is then covered.
        let value9 = machine.waiterCancelled(2)
        #expect(value9)
        _ = machine.expectWait()
        let value10 = machine.drainActions()
        #expect(value10 == [])
    }

    @Test("cancelling a waiter removes it in O(1) and only once; counters stay right")
    func cancellation() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let first = machine.expectWait()!
        let second = machine.expectWait()!
        #expect(machine.waiters.count == 2)
        let value11 = machine.waiterCancelled(first)
        #expect(value11)
        let value12 = machine.waiterCancelled(first)
        #expect(!value12)
        #expect(machine.waiters.count == 1)
        _ = machine.leaseReleased(slot: 0, now: .seconds(1), discardReason: nil)
        let value13 = machine.drainActions()
        #expect(value13 == [.resume(second, machine.grant(slot: 0, age: .seconds(1), useCount: 1))])
        let value14 = machine.waiterCancelled(second)
        #expect(!value14)
        #expect(machine.waiters.count == 0)
    }

    @Test("a failed hand-off puts the resource back for the next waiter")
    func handoffFailed() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let first = machine.expectWait()!
        let second = machine.expectWait()!
        _ = machine.leaseReleased(slot: 0, now: .seconds(1), discardReason: nil)
        let value15 = machine.drainActions()
        #expect(value15 == [.resume(first, machine.grant(slot: 0, age: .seconds(1), useCount: 1))])
        machine.handoffFailed(slot: 0, now: .seconds(1))
        let value16 = machine.drainActions()
        #expect(value16 == [.resume(second, machine.grant(slot: 0, age: .seconds(1), useCount: 1))])
        let value17 = machine.waiterCancelled(first)
        #expect(!value17)
    }

    @Test("the waiter served or failed comes back with the payload the shell attached to it")
    func payloadComesBackInActions() {
        final class Box: Sendable {}
        let served = Machine.WaiterPayload(Box())
        let timedOut = Machine.WaiterPayload(Box())
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let first = machine.expectWait(deadline: .seconds(10))!
        machine.waiters.attach(served, to: first)
        let second = machine.expectWait(deadline: .seconds(2))!
        machine.waiters.attach(timedOut, to: second)
        _ = machine.drainActions()
        machine.timerFired(now: .seconds(2))
        let fired = machine.drainActions()
        #expect(fired.first == .fail(second, .timedOut, payload: timedOut))
        _ = machine.leaseReleased(slot: 0, now: .seconds(3), discardReason: nil)
        let released = machine.drainActions()
        #expect(released == [.resume(first, machine.grant(slot: 0, age: .seconds(3), useCount: 1), payload: served)])
    }

    @Test("a resource failing validation is closed, and its lease ends in the same event")
    func validationFailed() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        guard case .leased(let grant) = machine.leaseRequested(now: .zero, deadline: nil) else {
            Issue.record("expected a lease")
            return
        }
        let heldFor = machine.validationFailed(slot: grant.slot, now: .seconds(1))
        #expect(heldFor == .seconds(1))
        #expect(machine.drainActions() == [.close(slot: 0, reason: .validationFailed)])
        #expect(machine.counts.leased == 0)
        #expect(machine.counts.closing == 1)
    }

    @Test("the waiter bound rejects at once when full")
    func maximumWaiters() {
        var machine = Machine.make {
            $0.maximumSize = 1
            $0.maximumWaiters = 1
        }
        let value18 = machine.expectWait()
        #expect(value18 != nil)
        let value19 = machine.leaseRequested(now: .zero, deadline: nil)
        #expect(value19 == .reject(.tooManyWaiters))
        #expect(machine.waiters.count == 1)
    }

    @Test("a discarded resource is closed and replaced for the next waiter")
    func discardReplaces() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        _ = machine.expectWait()
        _ = machine.drainActions()
        _ = machine.leaseReleased(slot: 0, now: .seconds(1), discardReason: .discarded)
        let value20 = machine.drainActions()
        #expect(value20 == [.close(slot: 0, reason: .discarded)])
        machine.resourceClosed(slot: 0, now: .seconds(2))
        let value21 = machine.drainActions()
        #expect(value21 == [.create(slot: 0)])
    }

    @Test("validation is requested after idling past the threshold or when flagged")
    func validationPolicy() {
        var machine = Machine.make { $0.validationIdleThreshold = .seconds(1) }
        machine.warmUp(2)
        guard case .leased(let fresh) = machine.leaseRequested(now: .milliseconds(500), deadline: nil) else {
            Issue.record("expected a lease")
            return
        }
        #expect(!fresh.validate)
        guard case .leased(let stale) = machine.leaseRequested(now: .seconds(2), deadline: nil) else {
            Issue.record("expected a lease")
            return
        }
        #expect(stale.validate)
        #expect(!stale.validationRequested)
        _ = machine.leaseReleased(slot: fresh.slot, now: .seconds(2), discardReason: nil)
        machine.idleValidationRequested()
        guard case .leased(let flagged) = machine.leaseRequested(now: .seconds(2), deadline: nil) else {
            Issue.record("expected a lease")
            return
        }
        #expect(flagged.validate && flagged.validationRequested)
    }

    @Test("a leak closes the resource and creates a replacement for the minimum")
    func leakReplaces() {
        var machine = Machine.make { $0.minimumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let value22 = machine.leaseLeaked(slot: 0, now: .seconds(3))
        #expect(value22 == .seconds(3))
        let value23 = machine.drainActions()
        #expect(value23 == [.close(slot: 0, reason: .leaked), .create(slot: 1)])
    }
}
