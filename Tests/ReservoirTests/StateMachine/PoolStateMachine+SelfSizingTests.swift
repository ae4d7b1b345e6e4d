import Testing

@testable import Reservoir

@Suite("PoolStateMachine: the effective maximum (self-sizing)")
struct PoolStateMachineSelfSizingTests {
    @Test("at the effective maximum a request waits although resources are idle, and creates nothing")
    func gatesLeasesAndCreations() {
        var machine = Machine.make { $0.maximumSize = 4 }
        machine.warmUp(3)
        machine.effectiveMaximumChanged(to: 2, now: .zero)
        #expect(machine.drainActions() == [])
        guard case .leased = machine.leaseRequested(now: .zero, deadline: nil),
            case .leased = machine.leaseRequested(now: .zero, deadline: nil)
        else {
            Issue.record("expected two leases")
            return
        }
        let waiter = machine.expectWait()
        #expect(waiter != nil)
        #expect(machine.drainActions() == [])
        #expect(machine.idle.count == 1)
        #expect(machine.counts.creating == 0)
    }

    @Test("a release at the effective maximum goes to the waiter; below it the resource stays idle")
    func releaseRespectsTheLimit() {
        var machine = Machine.make { $0.maximumSize = 4 }
        machine.warmUp(3)
        for _ in 0..<3 { _ = machine.leaseRequested(now: .zero, deadline: nil) }
        // Lowered to 1 while 3 are out: the first two releases do not serve the waiter, the third does.
        machine.effectiveMaximumChanged(to: 1, now: .zero)
        let waiter = machine.expectWait()
        _ = machine.drainActions()
        _ = machine.leaseReleased(slot: 2, now: .seconds(1), discardReason: nil)
        #expect(machine.drainActions() == [])
        _ = machine.leaseReleased(slot: 1, now: .seconds(1), discardReason: nil)
        #expect(machine.drainActions() == [])
        _ = machine.leaseReleased(slot: 0, now: .seconds(1), discardReason: nil)
        let actions = machine.drainActions()
        #expect(actions.count == 1)
        if case .resume(let id, let grant, _) = actions.first {
            #expect(id == waiter)
            #expect(grant.slot == 0)
        } else {
            Issue.record("expected the waiter to be resumed, got \(actions)")
        }
    }

    @Test("raising the effective maximum hands idle resources to waiters, then creates for the rest")
    func raisingServesWaiters() {
        var machine = Machine.make { $0.maximumSize = 4 }
        machine.warmUp(2)
        machine.effectiveMaximumChanged(to: 1, now: .zero)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let first = machine.expectWait()
        let second = machine.expectWait()
        #expect(machine.drainActions() == [])
        machine.effectiveMaximumChanged(to: 3, now: .seconds(1))
        let actions = machine.drainActions()
        #expect(actions.count == 2)
        if case .resume(let id, _, _) = actions.first { #expect(id == first) } else { Issue.record("\(actions)") }
        // The second waiter gets a new resource: one creation, within the limit of 3.
        #expect(actions.last == .create(slot: 2))
        #expect(machine.waiters.count == 1)
        _ = second
    }
}
