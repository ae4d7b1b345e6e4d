import ReservoirTestKit
import Testing

@testable import Reservoir

@Suite("PoolStateMachine.WaiterQueue")
struct PoolStateMachineWaitersTests {
    @Test("removal from the middle is lazy, and the front is always a live waiter")
    func lazyRemoval() {
        var queue = Machine.WaiterQueue()
        let ids = (0..<5).map { _ in queue.enqueue(now: .zero, deadline: nil) }
        let value1 = queue.remove(ids[1])
        #expect(value1?.id == ids[1])
        let value2 = queue.remove(ids[2])
        #expect(value2?.id == ids[2])
        let value3 = queue.remove(ids[2])
        #expect(value3 == nil)
        #expect(queue.count == 3)
        let value4 = queue.dequeue()
        #expect(value4?.id == ids[0])
        // Removed entries behind the front were skipped at once.
        #expect(queue.oldest?.id == ids[3])
        #expect(queue.removed.isEmpty)
        #expect(!queue.contains(ids[0]))
        #expect(queue.contains(ids[4]))
    }

    @Test("deadlines of waiters that left are dropped, so the heap stays as small as the queue")
    func deadlinesArePruned() {
        var queue = Machine.WaiterQueue()
        for second in 1...100 {
            _ = queue.enqueue(now: .zero, deadline: .seconds(second))
            _ = queue.dequeue()
        }
        #expect(queue.pendingDeadlineCount == 0)
        let late = queue.enqueue(now: .zero, deadline: .seconds(10))
        let early = queue.enqueue(now: .zero, deadline: .seconds(5))
        let value5 = queue.nextDeadline()
        #expect(value5 == .seconds(5))
        let value6 = queue.removeExpired(now: .seconds(7))
        #expect(value6.map(\.id) == [early])
        let value7 = queue.nextDeadline()
        #expect(value7 == .seconds(10))
        let value8 = queue.removeAll()
        #expect(value8.map(\.id) == [late])
        #expect(queue.isEmpty)
    }

    @Test("a waiter's payload comes back with its entry, wherever it leaves the queue, and is let go at once")
    func payloadTravelsWithTheEntry() {
        final class Box: Sendable {}
        var queue = Machine.WaiterQueue()
        var boxes: [Box] = []
        var ids: [Machine.WaiterID] = []
        for retry in [false, false, false, true, true] {
            let box = Box()
            let id = queue.enqueue(now: .zero, deadline: nil, retry: retry)
            queue.attach(Machine.WaiterPayload(box), to: id)
            boxes.append(box)
            ids.append(id)
        }
        // From the middle of each deque: the entry is still in its deque, its payload is not.
        #expect(queue.remove(ids[1])?.payload == Machine.WaiterPayload(boxes[1]))
        #expect(queue.remove(ids[4])?.payload == Machine.WaiterPayload(boxes[4]))
        #expect(queue.entries.allSatisfy { $0.payload?.object !== boxes[1] })
        #expect(queue.retries.allSatisfy { $0.payload?.object !== boxes[4] })
        // From the front: retries first.
        #expect(queue.dequeue()?.payload == Machine.WaiterPayload(boxes[3]))
        #expect(queue.dequeue()?.payload == Machine.WaiterPayload(boxes[0]))
        #expect(queue.removeAll().map(\.payload) == [Machine.WaiterPayload(boxes[2])])
    }

    @Test(
        "random enqueues, removals and dequeues match a plain list, payloads included",
        arguments: [1, 2, 3] as [UInt64]
    )
    func matchesAModel(seed: UInt64) {
        final class Box: Sendable {}
        var generator = SeededRandomNumberGenerator(seed: seed)
        var queue = Machine.WaiterQueue()
        // The model: retries in order, then first-time waiters in order.
        var retries: [(id: Machine.WaiterID, box: Box)] = []
        var firsts: [(id: Machine.WaiterID, box: Box)] = []
        var left: [Machine.WaiterID] = []
        for _ in 0..<2_000 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                let retry = Int.random(in: 0..<4, using: &generator) == 0
                let box = Box()
                let id = queue.enqueue(now: .zero, deadline: nil, retry: retry)
                queue.attach(Machine.WaiterPayload(box), to: id)
                if retry { retries.append((id, box)) } else { firsts.append((id, box)) }
            case 5..<8:
                let all = retries + firsts
                // Sometimes a waiter that already left: removing it again finds nothing.
                if let gone = left.randomElement(using: &generator), Int.random(in: 0..<4, using: &generator) == 0 {
                    #expect(queue.remove(gone) == nil)
                } else if let waiter = all.randomElement(using: &generator) {
                    #expect(queue.remove(waiter.id)?.payload == Machine.WaiterPayload(waiter.box))
                    retries.removeAll { $0.id == waiter.id }
                    firsts.removeAll { $0.id == waiter.id }
                    left.append(waiter.id)
                }
            default:
                let expected = retries.first ?? firsts.first
                let entry = queue.dequeue()
                #expect(entry?.id == expected?.id)
                #expect(entry?.payload == expected.map { Machine.WaiterPayload($0.box) })
                if let expected {
                    retries.removeAll { $0.id == expected.id }
                    firsts.removeAll { $0.id == expected.id }
                    left.append(expected.id)
                }
            }
            #expect(queue.count == retries.count + firsts.count)
        }
        #expect(queue.removeAll().map(\.id) == (retries + firsts).map(\.id))
    }
}

@Suite("LatencyHistogram")
struct LatencyHistogramTests {
    @Test("buckets are exact below 16 ns and within about 12 % above", arguments: [0, 1, 15, 16, 17, 100, 1_000, 123_456_789])
    func bucketBounds(value: UInt64) {
        let bucket = LatencyHistogram.bucket(for: value)
        let upper = LatencyHistogram.upperBound(ofBucket: bucket)
        #expect(upper >= value)
        #expect(Double(upper) <= Double(value) * 1.125 + 1)
    }

    @Test("the p99 of a distribution is found within bucket precision")
    func quantile() {
        var histogram = LatencyHistogram()
        for value in 1...1000 { histogram.record(UInt64(value) * 1000) }
        let p99 = histogram.quantile(0.99, mergedWith: LatencyHistogram()) ?? 0
        #expect(p99 >= 990_000)
        #expect(Double(p99) <= 990_000 * 1.13)
    }

    @Test("the public surface: durations in, seconds out, merged histograms, and fractions outside 0...1 clamped")
    func publicSurface() {
        var fast = LatencyHistogram()
        var slow = LatencyHistogram()
        #expect(fast.quantileSeconds(0.5) == 0)
        for _ in 0..<90 { fast.record(.milliseconds(1)) }
        for _ in 0..<10 { slow.record(.milliseconds(100)) }
        slow.record(.milliseconds(-5))  // counts as zero
        fast.merge(slow)
        #expect(fast.recordedCount == 101)
        let median = fast.quantileSeconds(0.5)
        #expect(median >= 0.001 && median <= 0.001 * 1.13)
        let p99 = fast.quantileSeconds(0.99)
        #expect(p99 >= 0.1 && p99 <= 0.1 * 1.13)
        #expect(fast.quantileSeconds(-1) == 0)
        #expect(fast.quantileSeconds(2) == fast.quantileSeconds(1))
        #expect(fast.quantileSeconds(.nan) == fast.quantileSeconds(1))
    }
}

@Suite("PoolStateMachine.WaiterQueue: retries")
struct PoolStateMachineRetryTests {
    @Test("a retry is served before first-time waiters, and ids of both deques never collide")
    func retriesFirst() {
        var queue = Machine.WaiterQueue()
        let first = queue.enqueue(now: .zero, deadline: nil)
        let second = queue.enqueue(now: .seconds(1), deadline: nil)
        let retry = queue.enqueue(now: .seconds(2), deadline: nil, retry: true)
        let third = queue.enqueue(now: .seconds(3), deadline: nil)
        #expect(queue.oldest?.id == first)
        let served = [queue.dequeue()?.id, queue.dequeue()?.id]
        #expect(served == [retry, first])
        // The served retry is no longer queued even though its id is between others.
        #expect(!queue.contains(retry))
        #expect(!queue.contains(first))
        #expect(queue.contains(second))
        #expect(queue.contains(third))
        #expect(queue.count == 2)
    }

    @Test("a caller whose resource failed validation keeps its turn and ignores the waiter bound")
    func retryKeepsTurn() {
        var machine = Machine.make {
            $0.maximumSize = 1
            $0.maximumWaiters = 1
        }
        machine.warmUp(1)
        _ = machine.leaseRequested(now: .zero, deadline: nil)
        let other = machine.expectWait()!
        // The holder's resource failed validation: it is discarded and the caller asks again as a retry.
        _ = machine.leaseReleased(slot: 0, now: .seconds(1), discardReason: .validationFailed)
        let retried = machine.leaseRequested(now: .seconds(1), deadline: nil, retry: true)
        guard case .wait(let retry) = retried else {
            Issue.record("expected the retry to wait, got \(retried)")
            return
        }
        _ = machine.drainActions()
        machine.resourceClosed(slot: 0, now: .seconds(2))
        let replacement = machine.drainActions()
        #expect(replacement == [.create(slot: 0)])
        machine.resourceCreated(slot: 0, now: .seconds(3), lifetimeJitter: 0)
        let actions = machine.drainActions()
        #expect(actions == [.resume(retry, machine.grant(slot: 0))])
        #expect(machine.waiters.contains(other))
    }
}
