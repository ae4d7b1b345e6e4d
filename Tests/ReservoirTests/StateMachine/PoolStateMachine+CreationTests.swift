import Testing

@testable import Reservoir

@Suite("PoolStateMachine: creation, backoff and circuit breaker")
struct PoolStateMachineCreationTests {
    @Test("the minimum size is created at start and restored after an eviction")
    func minimumSize() {
        var machine = Machine.make {
            $0.minimumSize = 2
            $0.maximumSize = 3
        }
        machine.startCreationsIfNeeded(now: .zero)
        let value1 = machine.drainActions()
        #expect(value1 == [.create(slot: 0), .create(slot: 1)])
        machine.resourceCreated(slot: 0, now: .zero, lifetimeJitter: 0)
        machine.resourceCreated(slot: 1, now: .zero, lifetimeJitter: 0)
        _ = machine.drainActions()
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        _ = machine.leaseReleased(slot: 1, now: .seconds(1), discardReason: .discarded)
        let value2 = machine.drainActions()
        #expect(value2 == [.close(slot: 1, reason: .discarded), .create(slot: 2)])
    }

    @Test(
        "the backoff grows by the multiplier up to the maximum, scaled by the jitter",
        arguments: [
            (1, 0.5, Duration.milliseconds(100)),
            (2, 0.5, .milliseconds(200)),
            (4, 0.5, .milliseconds(800)),
            (10, 0.5, .seconds(10)),
            (1, 0.0, .milliseconds(80)),
            (1, 1.0, .milliseconds(120)),
        ]
    )
    func backoffSchedule(failures: Int, jitter: Double, expected: Duration) {
        let machine = Machine.make {
            $0.backoffInitial = .milliseconds(100)
            $0.backoffMultiplier = 2
            $0.backoffMaximum = .seconds(10)
            $0.backoffJitter = 0.2
        }
        #expect(machine.backoffDelay(afterFailures: failures, jitter: jitter) == expected)
    }

    @Test("after a failure the next creation waits for the backoff, one at a time")
    func retryAfterBackoff() {
        var machine = Machine.make {
            $0.maximumSize = 3
            $0.backoffInitial = .seconds(1)
        }
        _ = machine.expectWait()
        _ = machine.expectWait()
        let value3 = machine.drainActions()
        #expect(value3 == [.create(slot: 0), .create(slot: 1)])
        machine.creationFailed(slot: 0, now: .seconds(10), backoffJitter: 0.5)
        // Slot 1 is still creating and covers one waiter; the other must wait for the backoff.
        let value4 = machine.drainActions()
        #expect(value4 == [.scheduleWakeup(at: .seconds(11))])
        // At the retry time slot 1 is still creating: while failing, only one creation runs at a time.
        machine.timerFired(now: .seconds(11))
        let value5 = machine.drainActions()
        #expect(value5 == [])
        // A second failure doubles the backoff; then the retry starts.
        machine.creationFailed(slot: 1, now: .seconds(11), backoffJitter: 0.5)
        let retry = machine.drainActions()
        #expect(retry == [.scheduleWakeup(at: .seconds(13))])
        machine.timerFired(now: .seconds(13))
        let created = machine.drainActions()
        #expect(created == [.create(slot: 1)])
        machine.resourceCreated(slot: 1, now: .seconds(14), lifetimeJitter: 0)
        #expect(machine.creation.consecutiveFailures == 0)
    }

    @Test("the circuit breaker opens after the threshold with nothing open, fails waiters, and closes on success")
    func circuitBreaker() {
        var machine = Machine.make {
            $0.maximumSize = 1
            $0.circuitBreakerThreshold = 2
            $0.backoffInitial = .seconds(1)
        }
        let waiter = machine.expectWait()!
        let value6 = machine.drainActions()
        #expect(value6 == [.create(slot: 0)])
        machine.creationFailed(slot: 0, now: .seconds(1), backoffJitter: 0.5)
        let value7 = machine.drainActions()
        #expect(value7 == [.scheduleWakeup(at: .seconds(2))])
        machine.timerFired(now: .seconds(2))
        let value8 = machine.drainActions()
        #expect(value8 == [.create(slot: 0)])
        machine.creationFailed(slot: 0, now: .seconds(2), backoffJitter: 0.5)
        let value9 = machine.drainActions()
        #expect(value9 == [
            .circuitBreakerOpened, .fail(waiter, .circuitBreakerOpen), .scheduleWakeup(at: .seconds(4)),
        ])
        // While open, requests fail fast.
        let rejected = machine.leaseRequested(now: .seconds(3), deadline: nil)
        #expect(rejected == .reject(.circuitBreakerOpen))
        // The probe keeps going on the backoff, and a success closes the breaker.
        machine.timerFired(now: .seconds(4))
        let value10 = machine.drainActions()
        #expect(value10 == [.create(slot: 0)])
        machine.resourceCreated(slot: 0, now: .seconds(5), lifetimeJitter: 0)
        let value11 = machine.drainActions()
        #expect(value11 == [.circuitBreakerClosed])
        let leased = machine.leaseRequested(now: .seconds(5), deadline: nil)
        #expect(leased == .leased(machine.grant(slot: 0)))
    }

    @Test("a permanent creation failure opens the circuit breaker at once, below the threshold")
    func permanentFailureOpensBreaker() {
        var machine = Machine.make {
            $0.maximumSize = 1
            $0.circuitBreakerThreshold = 5
            $0.backoffInitial = .seconds(1)
        }
        let waiter = machine.expectWait()!
        _ = machine.drainActions()
        machine.creationFailed(slot: 0, now: .seconds(1), backoffJitter: 0.5, permanent: true)
        let actions = machine.drainActions()
        #expect(actions == [
            .circuitBreakerOpened, .fail(waiter, .circuitBreakerOpen), .scheduleWakeup(at: .seconds(2)),
        ])
        #expect(machine.leaseRequested(now: .seconds(1), deadline: nil) == .reject(.circuitBreakerOpen))
    }

    @Test("the circuit breaker stays closed while a resource is open")
    func breakerNeedsNoOpenResource() {
        var machine = Machine.make {
            $0.maximumSize = 2
            $0.circuitBreakerThreshold = 1
        }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        _ = machine.expectWait()
        let value12 = machine.drainActions()
        #expect(value12 == [.create(slot: 1)])
        machine.creationFailed(slot: 1, now: .seconds(1), backoffJitter: 0.5)
        #expect(!machine.creation.circuitBreakerOpen)
    }

    @Test("maximum lifetime is shortened by the per-resource jitter")
    func lifetimeJitter() {
        var machine = Machine.make {
            $0.maximumLifetime = .seconds(100)
            $0.maximumLifetimeJitter = 0.1
        }
        machine.startCreationsIfNeeded(now: .zero)
        _ = machine.expectWait()
        _ = machine.expectWait()
        _ = machine.drainActions()
        machine.resourceCreated(slot: 0, now: .zero, lifetimeJitter: 0)
        machine.resourceCreated(slot: 1, now: .zero, lifetimeJitter: 0.5)
        #expect(machine.slots[0].expiresAt == .seconds(100))
        #expect(machine.slots[1].expiresAt == .seconds(95))
    }
}
