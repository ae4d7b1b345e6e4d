import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

@Suite("Bounded channel")
struct BoundedChannelTests {
    @Test("delivers every element in order to one consumer")
    func deliversInOrder() async throws {
        let channel = try BoundedChannel<Int>(capacity: 4)
        async let consumed: [Int] = {
            var values: [Int] = []
            for try await value in channel { values.append(value) }
            return values
        }()
        for value in 1...100 { try await channel.send(value) }
        channel.finish()
        #expect(try await consumed == Array(1...100))
    }

    @Test("gives each element to exactly one of several consumers")
    func severalConsumers() async throws {
        let channel = try BoundedChannel<Int>(capacity: 8)
        let all = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<3 {
                group.addTask {
                    var values: [Int] = []
                    while let value = try await channel.receive() { values.append(value) }
                    return values
                }
            }
            for value in 0..<1000 { try await channel.send(value) }
            channel.finish()
            var all: [Int] = []
            for try await values in group { all += values }
            return all
        }
        #expect(all.sorted() == Array(0..<1000))
    }

    @Test("a send suspends while full and resumes when a consumer takes an element")
    func sendSuspendsWhileFull() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.init(capacity: 1), metrics: metrics)
        try await channel.send(1)
        let producer = Task { try await channel.send(2) }
        await metrics.waitForWaitingProducers(1)
        #expect(channel.statistics.waitingProducers == 1)
        #expect(try await channel.receive() == 1)
        try await producer.value
        #expect(try await channel.receive() == 2)
    }

    @Test("a send cancelled while suspended hands its element back")
    func cancelledSendHandsBack() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<String>.observed(.init(capacity: 1), metrics: metrics)
        try await channel.send("first")
        let producer = Task { () -> BoundedChannel<String>.SendError? in
            do throws(BoundedChannel<String>.SendError) {
                try await channel.send("second")
                return nil
            } catch {
                return error
            }
        }
        await metrics.waitForWaitingProducers(1)
        producer.cancel()
        let error = try #require(await producer.value)
        #expect(error.element == "second")
        #expect(error.code == .cancelled)
        #expect(channel.statistics.waitingProducers == 0)
        #expect(channel.statistics.bufferedElements == 1)
    }

    @Test("a send from an already cancelled task fails without waiting")
    func cancelledBeforeSend() async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        try await channel.send(1)
        let producer = Task { () -> BackpressureError.Code? in
            withUnsafeCurrentTask { $0?.cancel() }
            do throws(BoundedChannel<Int>.SendError) {
                try await channel.send(2)
                return nil
            } catch {
                return error.element == 2 ? error.code : nil
            }
        }
        #expect(await producer.value == .cancelled)
    }

    @Test("a send with a timeout hands the element back when the timeout passes")
    func sendTimesOut() async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        let clock = ManualClock()
        try await channel.send(1)
        let producer = Task { () -> BoundedChannel<Int>.SendError? in
            do throws(BoundedChannel<Int>.SendError) {
                try await channel.send(2, timeout: .seconds(1), clock: clock)
                return nil
            } catch {
                return error
            }
        }
        await clock.waitForSleepers(1)
        clock.advance(by: .milliseconds(999))
        #expect(channel.statistics.waitingProducers == 1)
        clock.advance(by: .milliseconds(1))
        let error = try #require(await producer.value)
        #expect(error.element == 2)
        #expect(error.code == .timedOut)
    }

    @Test("a send with a timeout that gets room in time succeeds and stops its timer")
    func sendWithTimeoutSucceeds() async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        let clock = ManualClock()
        try await channel.send(1)
        let producer = Task { try await channel.send(2, timeout: .seconds(1), clock: clock) }
        await clock.waitForSleepers(1)
        #expect(try await channel.receive() == 1)
        try await producer.value
        #expect(clock.sleeperCount == 0)
        #expect(try await channel.receive() == 2)
    }

    @Test("finish lets consumers drain, then ends them; waiting producers get their elements back")
    func finishDrains() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.init(capacity: 2), metrics: metrics)
        try await channel.send(1)
        try await channel.send(2)
        let producer = Task { () -> Int? in
            do throws(BoundedChannel<Int>.SendError) {
                try await channel.send(3)
                return nil
            } catch {
                return error.code == .channelFinished ? error.element : nil
            }
        }
        await metrics.waitForWaitingProducers(1)
        channel.finish()
        #expect(await producer.value == 3)
        #expect(try await channel.receive() == 1)
        #expect(try await channel.receive() == 2)
        #expect(try await channel.receive() == nil)
        #expect(
            sendFailure(of: Int.self) { () throws(BoundedChannel<Int>.SendError) in try channel.trySend(4) }
                == .channelFinished)
    }

    @Test("cancel passes buffered elements to the drop callback and ends waiting consumers")
    func cancelDrops() async throws {
        let dropped = Collector<Int>()
        let channel = try BoundedChannel<Int>(capacity: 4) { value, reason in
            if reason == .channelCancelled { dropped.append(value) }
        }
        try await channel.send(1)
        try await channel.send(2)
        channel.cancel()
        #expect(dropped.values == [1, 2])
        #expect(try await channel.receive() == nil)

        let metrics = ObservedMetrics()
        let empty = try BoundedChannel<Int>.observed(.init(capacity: 1), metrics: metrics)
        let consumer = Task { try await empty.receive() }
        await metrics.waitForWaitingConsumers(1)
        #expect(empty.statistics.waitingConsumers == 1)
        empty.cancel()
        #expect(try await consumer.value == nil)
    }

    @Test("a channel released with elements buffered passes them to the drop callback")
    func deinitDrops() throws {
        let dropped = Collector<String>()
        do {
            let channel = try BoundedChannel<Int>(capacity: 4) { value, reason in dropped.append("\(value) \(reason)") }
            try channel.trySend(1)
            try channel.trySend(2)
            _ = channel.tryReceive()
        }
        #expect(dropped.values == ["2 channel_cancelled"])
    }

    @Test("a consumer cancelled while waiting throws cancelled")
    func consumerCancelled() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.init(capacity: 1), metrics: metrics)
        let consumer = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                _ = try await channel.receive()
                return nil
            } catch {
                return error.code
            }
        }
        await metrics.waitForWaitingConsumers(1)
        #expect(channel.statistics.waitingConsumers == 1)
        consumer.cancel()
        #expect(await consumer.value == .cancelled)
        #expect(channel.statistics.waitingConsumers == 0)
    }

    @Test("a consumer whose task is already cancelled fails at once on an empty channel")
    func consumerCancelledBeforeSuspend() async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        let consumer = Task { () -> BackpressureError.Code? in
            withUnsafeCurrentTask { $0?.cancel() }
            do throws(BackpressureError) {
                _ = try await channel.receive()
                return nil
            } catch {
                return error.code
            }
        }
        #expect(await consumer.value == .cancelled)
        #expect(channel.statistics.waitingConsumers == 0)
    }

    @Test("trySend hands the element back when full")
    func trySendFull() throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        try channel.trySend(1)
        do throws(BoundedChannel<Int>.SendError) {
            try channel.trySend(2)
            Issue.record("expected channelFull")
        } catch {
            #expect(error.element == 2)
            #expect(error.code == .channelFull)
        }
        #expect(channel.tryReceive() == 1)
        #expect(channel.tryReceive() == nil)
    }

    @Test("drop policies report drops to the callback and the metrics")
    func dropPoliciesAndMetrics() throws {
        let metrics = ObservedMetrics()
        let dropped = Collector<String>()
        var configuration = BoundedChannel<Int>.Configuration(capacity: 2)
        configuration.overflowPolicy = .dropOldest
        configuration.label = "jobs"
        configuration.metricsFactory = metrics
        configuration.onDrop = { value, reason in dropped.append("\(value) \(reason)") }
        let channel = try BoundedChannel(configuration: configuration)
        for value in 1...5 { try channel.trySend(value) }
        #expect(dropped.values == ["1 dropped_oldest", "2 dropped_oldest", "3 dropped_oldest"])
        #expect(
            metrics.value("backpressure.channel.dropped", [("channel", "jobs"), ("reason", "dropped_oldest")]) == 3
        )
        #expect(channel.tryReceive() == 4)
        #expect(channel.tryReceive() == 5)
    }

    @Test("producer wait time and waiting producers are recorded")
    func producerWaitMetrics() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.init(capacity: 1), metrics: metrics)
        try await channel.send(1)
        let producer = Task { try await channel.send(2) }
        // Returns once the meter is 1, which is what this test checks: a channel that never raised it would hang here.
        await metrics.waitForWaitingProducers(1)
        #expect(channel.statistics.waitingProducers == 1)
        #expect(metrics.value("backpressure.channel.depth", [("channel", "channel")]) == 1)
        _ = try await channel.receive()
        try await producer.value
        #expect(metrics.value("backpressure.channel.producer_wait", [("channel", "channel")]) == 1)
        #expect(metrics.value("backpressure.channel.producers_waiting", [("channel", "channel")]) == 0)
    }

    @Test("a permit reserves room; sending through it cannot fail; dropping it frees the room")
    func permits() async throws {
        let channel = try BoundedChannel<Int>(capacity: 1)
        let permit = try await channel.reserve()
        #expect(try channel.tryReserve() == nil)
        permit.send(42)
        #expect(try await channel.receive() == 42)
        do {
            let unused = try await channel.reserve()
            #expect(channel.statistics.level == 1)
            _ = consume unused
        }
        #expect(channel.statistics.level == 0)
    }

    @Test("a reserve waits for room and can be cancelled")
    func reserveWaitsAndCancels() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.init(capacity: 1), metrics: metrics)
        try await channel.send(1)
        let waiter = Task { () -> BackpressureError.Code? in
            do throws(BackpressureError) {
                let permit = try await channel.reserve()
                permit.send(2)
                return nil
            } catch {
                return error.code
            }
        }
        await metrics.waitForWaitingProducers(1)
        #expect(channel.statistics.waitingProducers == 1)
        waiter.cancel()
        #expect(await waiter.value == .cancelled)
        #expect(channel.statistics.level == 1)
    }

    @Test("weighted elements count against the capacity by weight")
    func weighted() async throws {
        var configuration = BoundedChannel<String>.Configuration(capacity: 10)
        configuration.weight = { $0.utf8.count }
        let channel = try BoundedChannel(configuration: configuration)
        try channel.trySend("123456")
        #expect(
            sendFailure(of: String.self) { () throws(BoundedChannel<String>.SendError) in try channel.trySend("12345") }
                == .channelFull)
        try channel.trySend("1234")
        #expect(channel.statistics.level == 10)
        #expect(
            sendFailure(of: String.self) { () throws(BoundedChannel<String>.SendError) in
                try channel.trySend("12345678901")
            } == .elementTooLarge)
    }

    @Test("a watermark channel resumes producers only after draining to the low mark")
    func watermarks() async throws {
        let metrics = ObservedMetrics()
        let channel = try BoundedChannel<Int>.observed(.watermark(low: 1, high: 3), metrics: metrics)
        for value in 1...3 { try await channel.send(value) }
        let producer = Task { try await channel.send(4) }
        await metrics.waitForWaitingProducers(1)
        _ = try await channel.receive()
        #expect(channel.statistics.waitingProducers == 1)
        _ = try await channel.receive()
        try await producer.value
        #expect(channel.statistics.bufferedElements == 2)
    }

    @Test(
        "invalid settings throw a typed error naming the field",
        arguments: [
            (0, nil, OverflowPolicy.suspend, "capacity"),
            (-5, nil, .suspend, "capacity"),
            (4, 4, .suspend, "lowWatermark"),
            (4, -1, .suspend, "lowWatermark"),
            (4, 1, .dropOldest, "lowWatermark"),
        ] as [(Int, Int?, OverflowPolicy, String)]
    )
    func invalidSettings(capacity: Int, low: Int?, policy: OverflowPolicy, field: String) {
        var configuration = BoundedChannel<Int>.Configuration(capacity: capacity)
        configuration.lowWatermark = low
        configuration.overflowPolicy = policy
        do {
            _ = try BoundedChannel(configuration: configuration)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.field == field)
        }
    }
}

/// The code of the `SendError` that `body` throws, or `nil` when it does not throw.
func sendFailure<Element>(
    of type: Element.Type,
    _ body: () throws(BoundedChannel<Element>.SendError) -> Void
) -> BackpressureError.Code? {
    do {
        try body()
        return nil
    } catch {
        return error.code
    }
}
