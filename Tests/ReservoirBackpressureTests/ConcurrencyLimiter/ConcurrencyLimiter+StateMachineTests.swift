import Testing

@testable import ReservoirBackpressure

@Suite("Concurrency limiter state machine")
struct ConcurrencyLimiterStateMachineTests {
    typealias Machine = ConcurrencyLimiterStateMachine<String>

    @Test("grants up to the limit, queues up to the queue length, then rejects")
    func grantsQueuesRejects() {
        var machine = Machine(limit: 2, maxQueueLength: 1)
        guard case .granted = machine.acquire(), case .granted = machine.acquire() else {
            Issue.record("expected grants")
            return
        }
        guard case .mustWait(let id) = machine.acquire() else {
            Issue.record("expected a wait")
            return
        }
        guard case .suspended = machine.acquireOrWait(id: id, token: "w1", isCancelled: false) else {
            Issue.record("expected to suspend")
            return
        }
        guard case .failed(.queueFull) = machine.acquire() else {
            Issue.record("expected queueFull")
            return
        }
        #expect(machine.released() == "w1")
        #expect(machine.inFlight == 2)
        #expect(machine.released() == nil)
        #expect(machine.inFlight == 1)
    }

    @Test("a lower limit takes effect as permits return; a higher one admits waiters at once")
    func limitChanges() {
        var machine = Machine(limit: 2, maxQueueLength: 10)
        _ = machine.acquire()
        _ = machine.acquire()
        for index in 1...3 {
            guard case .mustWait(let id) = machine.acquire() else { return }
            _ = machine.acquireOrWait(id: id, token: "w\(index)", isCancelled: false)
        }
        #expect(machine.limitChanged(to: 1).array == [])
        #expect(machine.released() == nil)  // 2 in flight > limit 1: nobody admitted
        #expect(machine.inFlight == 1)
        #expect(machine.limitChanged(to: 3).array == ["w1", "w2"])
        #expect(machine.inFlight == 3)
    }

    @Test("cancelled waiters leave the queue; shutdown fails the rest")
    func cancelAndShutdown() {
        var machine = Machine(limit: 1, maxQueueLength: 10)
        _ = machine.acquire()
        for index in 1...2 {
            guard case .mustWait(let id) = machine.acquire() else { return }
            _ = machine.acquireOrWait(id: id, token: "w\(index)", isCancelled: false)
        }
        #expect(machine.waiterCancelled(id: 1) == "w1")
        #expect(machine.waiterCancelled(id: 1) == nil)
        #expect(machine.shutDown() == ["w2"])
        guard case .failed(.limiterShutDown) = machine.acquire() else {
            Issue.record("expected limiterShutDown")
            return
        }
    }

    @Test("a timed caller whose deadline passed before it registered fails with timedOut instead of queueing")
    func deadlinePassedBeforeRegistration() {
        var machine = Machine(limit: 1, maxQueueLength: 4)
        _ = machine.acquire()
        guard case .mustWait(let id) = machine.acquire() else {
            Issue.record("expected a wait")
            return
        }
        guard case .failed(.timedOut) = machine.acquireOrWait(id: id, token: "w1", isCancelled: false, deadlinePassed: true)
        else {
            Issue.record("expected timedOut")
            return
        }
        #expect(machine.waiters.isEmpty)
        #expect(machine.inFlight == 1)
    }
}
