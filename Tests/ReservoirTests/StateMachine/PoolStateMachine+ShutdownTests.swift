import Testing

@testable import Reservoir

@Suite("PoolStateMachine: graceful and forced shutdown")
struct PoolStateMachineShutdownTests {
    @Test("a drain fails waiters, closes idle resources, waits for leases, then completes")
    func drain() {
        var machine = Machine.make { $0.maximumSize = 2 }
        machine.warmUp(2)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let waiter = machine.expectWait()!
        _ = machine.drainActions()
        machine.drainRequested(now: .seconds(1), timeout: .seconds(30))
        let started = machine.drainActions()
        #expect(started == [.fail(waiter, .shuttingDown), .scheduleWakeup(at: .seconds(31))])
        let rejected = machine.leaseRequested(now: .seconds(2), deadline: nil)
        #expect(rejected == .reject(.shuttingDown))
        _ = machine.leaseReleased(slot: 0, now: .seconds(3), discardReason: nil)
        _ = machine.leaseReleased(slot: 1, now: .seconds(3), discardReason: nil)
        let closing = machine.drainActions()
        #expect(closing == [.close(slot: 0, reason: .shutdown), .close(slot: 1, reason: .shutdown)])
        machine.resourceClosed(slot: 0, now: .seconds(4))
        let notYet = machine.drainActions()
        #expect(notYet == [])
        machine.resourceClosed(slot: 1, now: .seconds(4))
        let done = machine.drainActions()
        #expect(done == [.shutdownCompleted])
    }

    @Test("a drain whose deadline passes with a lease out completes without waiting for it")
    func drainTimeout() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        machine.drainRequested(now: .zero, timeout: .seconds(5))
        _ = machine.drainActions()
        machine.timerFired(now: .seconds(5))
        let done = machine.drainActions()
        #expect(done == [.shutdownCompleted])
        // The late lease is closed when it comes back.
        _ = machine.leaseReleased(slot: 0, now: .seconds(9), discardReason: nil)
        let late = machine.drainActions()
        #expect(late == [.close(slot: 0, reason: .shutdown)])
    }

    @Test("a forced shutdown waits only for work in flight")
    func forced() {
        var machine = Machine.make { $0.maximumSize = 2 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let waiter = machine.expectWait()!
        let creating = machine.drainActions()
        #expect(creating == [.create(slot: 1)])
        machine.forcedShutdownRequested()
        let forced = machine.drainActions()
        #expect(forced == [.fail(waiter, .shuttingDown)])
        // The creation in flight finishes and is closed at once; then shutdown completes, with the lease still out.
        machine.resourceCreated(slot: 1, now: .seconds(1), lifetimeJitter: 0)
        let closed = machine.drainActions()
        #expect(closed == [.close(slot: 1, reason: .shutdown)])
        machine.resourceClosed(slot: 1, now: .seconds(1))
        let done = machine.drainActions()
        #expect(done == [.shutdownCompleted])
    }
}
