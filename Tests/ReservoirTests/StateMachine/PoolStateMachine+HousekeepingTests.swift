import Testing

@testable import Reservoir

@Suite("PoolStateMachine: timers, idle shrink, lifetime, keep-alive, leaks, invalidation")
struct PoolStateMachineHousekeepingTests {
    @Test("a waiter past its deadline fails with a timeout, and the others keep waiting")
    func timeout() {
        var machine = Machine.make { $0.maximumSize = 1 }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let early = machine.expectWait(now: .zero, deadline: .seconds(5))!
        let late = machine.expectWait(now: .zero, deadline: .seconds(10))!
        let scheduled = machine.drainActions()
        #expect(scheduled == [.scheduleWakeup(at: .seconds(5))])
        machine.timerFired(now: .seconds(5))
        let fired = machine.drainActions()
        #expect(fired == [.fail(early, .timedOut), .scheduleWakeup(at: .seconds(10))])
        #expect(machine.waiters.count == 1)
        _ = machine.leaseReleased(slot: 0, now: .seconds(6), discardReason: nil)
        let resumed = machine.drainActions()
        #expect(resumed == [.resume(late, machine.grant(slot: 0, age: .seconds(6), useCount: 1))])
    }

    @Test("idle resources above the minimum close after the idle timeout, oldest first")
    func shrinkToMinimum() {
        var machine = Machine.make {
            $0.minimumSize = 1
            $0.maximumSize = 3
            $0.idleTimeout = .seconds(60)
        }
        machine.warmUp(3)
        // Use slot 2 later so that slots 0 and 1 are the longest idle.
        _ = machine.leaseRequested(now: .seconds(10), deadline: nil)
        _ = machine.leaseReleased(slot: 2, now: .seconds(30), discardReason: nil)
        _ = machine.drainActions()
        machine.timerFired(now: .seconds(60))
        let first = machine.drainActions()
        #expect(first == [
            .close(slot: 0, reason: .idleTimeout), .close(slot: 1, reason: .idleTimeout),
        ])
        machine.resourceClosed(slot: 0, now: .seconds(61))
        machine.resourceClosed(slot: 1, now: .seconds(61))
        _ = machine.drainActions()
        // Slot 2 is the minimum: it stays.
        machine.timerFired(now: .seconds(200))
        let later = machine.drainActions()
        #expect(later == [])
        #expect(machine.idle.count == 1)
    }

    @Test("an idle resource past its lifetime is closed and replaced to keep the minimum")
    func lifetimeEvictsIdle() {
        var machine = Machine.make {
            $0.minimumSize = 1
            $0.maximumLifetime = .seconds(100)
        }
        machine.warmUp(1)
        machine.timerFired(now: .seconds(100))
        let actions = machine.drainActions()
        #expect(actions == [.close(slot: 0, reason: .maximumLifetime), .create(slot: 1)])
    }

    @Test("a leased resource past its lifetime is closed when it comes back")
    func lifetimeEvictsOnRelease() {
        var machine = Machine.make { $0.maximumLifetime = .seconds(100) }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .seconds(50), deadline: nil)
        _ = machine.leaseReleased(slot: 0, now: .seconds(120), discardReason: nil)
        let actions = machine.drainActions()
        #expect(actions == [.close(slot: 0, reason: .maximumLifetime)])
    }

    @Test("keep-alive checks idle resources on the interval and closes the ones that fail")
    func keepAlive() {
        var machine = Machine.make {
            $0.maximumSize = 2
            $0.keepAliveInterval = .seconds(30)
        }
        machine.warmUp(2)
        machine.timerFired(now: .seconds(30))
        let started = machine.drainActions()
        #expect(started == [.keepAlive(slot: 0), .keepAlive(slot: 1)])
        #expect(machine.counts.keepingAlive == 2)
        machine.keepAliveFinished(slot: 1, now: .seconds(31), succeeded: true)
        machine.keepAliveFinished(slot: 0, now: .seconds(31), succeeded: false)
        let finished = machine.drainActions()
        #expect(finished == [.scheduleWakeup(at: .seconds(61)), .close(slot: 0, reason: .keepAliveFailed)])
        #expect(machine.idle.count == 1)
    }

    @Test("a lease held past the leak threshold is reported once, then reported again as recovered")
    func leakThreshold() {
        var machine = Machine.make { $0.leakThreshold = .seconds(10) }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let scheduled = machine.drainActions()
        #expect(scheduled == [.scheduleWakeup(at: .seconds(10))])
        machine.timerFired(now: .seconds(10))
        let reported = machine.drainActions()
        #expect(reported == [.reportLeakSuspected(slot: 0, heldFor: .seconds(10))])
        machine.timerFired(now: .seconds(20))
        let again = machine.drainActions()
        #expect(again == [])
        _ = machine.leaseReleased(slot: 0, now: .seconds(25), discardReason: nil)
        let recovered = machine.drainActions()
        #expect(recovered == [.reportLeakRecovered(slot: 0, heldFor: .seconds(25))])
    }

    @Test("invalidateAll closes idle resources now and leased ones when they come back, then replaces them")
    func invalidateAll() {
        var machine = Machine.make {
            $0.minimumSize = 2
            $0.maximumSize = 4
        }
        machine.warmUp(2)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        machine.invalidateAllRequested(now: .seconds(1))
        let now = machine.drainActions()
        #expect(now == [.close(slot: 0, reason: .invalidated), .create(slot: 2)])
        _ = machine.leaseReleased(slot: 1, now: .seconds(2), discardReason: nil)
        let returned = machine.drainActions()
        #expect(returned == [.close(slot: 1, reason: .invalidated), .create(slot: 3)])
    }
}
