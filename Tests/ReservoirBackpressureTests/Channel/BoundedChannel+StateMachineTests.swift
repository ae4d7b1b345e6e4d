import DequeModule
import Testing

@testable import ReservoirBackpressure

/// Tokens are plain strings ("p1", "c2"): effects are compared as readable lines.
typealias TestChannel = BoundedChannelStateMachine<Int, String, String>

func describe(_ effects: TestChannel.Effects) -> [String] {
    var lines: [String] = []
    effects.consumers.visit { token, result in
        switch result {
        case .element(let value): lines.append("\(token) <- \(value)")
        case .end: lines.append("\(token) <- end")
        case .failed(let code): lines.append("\(token) <- \(code)")
        }
    }
    effects.producers.visit { token, result in
        switch result {
        case .sent: lines.append("\(token) sent")
        case .reserved: lines.append("\(token) reserved")
        case .failed(let element, let code): lines.append("\(token) failed \(code) \(element.map(String.init) ?? "-")")
        }
    }
    effects.dropped.visit { element, reason in lines.append("drop \(element) \(reason)") }
    return lines
}

func describe(_ action: TestChannel.SendAction) -> String {
    switch action {
    case .enqueued: "enqueued []"
    case .deliver(let consumer, let element): "enqueued [\"\(consumer) <- \(element)\"]"
    case .enqueuedWithEffects(let effects): "enqueued \(describe(effects))"
    case .mustSuspend(let element, _): "suspend \(element)"
    case .failed(let element, let code): "failed \(element) \(code)"
    }
}

func describe(_ action: TestChannel.ReceiveAction) -> String {
    switch action {
    case .element(let element): "element \(element) []"
    case .elementAndProducer(let element, let producer, let result):
        "element \(element) \(describe(oneProducer: producer, result))"
    case .elementAndEffects(let element, let effects): "element \(element) \(describe(effects))"
    case .end: "end"
    case .mustSuspend: "suspend"
    }
}

func describe(oneProducer producer: String, _ result: TestChannel.ProducerResult) -> [String] {
    var effects = TestChannel.Effects()
    effects.producers = .one((producer, result))
    return describe(effects)
}

@Suite("Bounded channel state machine")
struct BoundedChannelStateMachineTests {
    func machine(
        capacity: Int = 2,
        low: Int? = nil,
        policy: OverflowPolicy = .suspend,
        weighted: Bool = false
    ) -> TestChannel {
        TestChannel(capacity: capacity, resumeLevel: low ?? capacity, overflow: policy, isWeighted: weighted)
    }

    @Test("buffers up to the capacity, then asks the producer to suspend")
    func buffersUpToCapacity() {
        var channel = machine()
        #expect(describe(channel.send(1, weight: 1)) == "enqueued []")
        #expect(describe(channel.send(2, weight: 1)) == "enqueued []")
        #expect(describe(channel.send(3, weight: 1)) == "suspend 3")
        #expect(channel.level == 2)
    }

    @Test("hands an element straight to a waiting consumer")
    func handsToWaitingConsumer() {
        var channel = machine()
        #expect(describe(channel.receive()) == "suspend")
        guard case .suspended = channel.receiveOrWait(id: 1, token: "c1", isCancelled: false) else {
            Issue.record("consumer should wait")
            return
        }
        #expect(describe(channel.send(7, weight: 1)) == "enqueued [\"c1 <- 7\"]")
        #expect(channel.bufferedCount == 0)
    }

    @Test("admits waiting producers in FIFO order as room frees up")
    func admitsProducersFIFO() {
        var channel = machine(capacity: 1)
        _ = channel.send(1, weight: 1)
        guard case .suspended = channel.sendOrWait(2, weight: 1, id: 1, token: "p1", isCancelled: false),
            case .suspended = channel.sendOrWait(3, weight: 1, id: 2, token: "p2", isCancelled: false)
        else {
            Issue.record("producers should wait")
            return
        }
        #expect(describe(channel.receive()) == "element 1 [\"p1 sent\"]")
        #expect(describe(channel.receive()) == "element 2 [\"p2 sent\"]")
        #expect(describe(channel.receive()) == "element 3 []")
    }

    @Test("a new send queues behind waiting producers even when room appears")
    func newSendQueuesBehindWaiters() {
        var channel = machine(capacity: 2, weighted: true)
        _ = channel.send(1, weight: 1)
        // A heavy element waits for the whole capacity.
        guard case .suspended = channel.sendOrWait(2, weight: 2, id: 1, token: "p1", isCancelled: false) else {
            Issue.record("heavy producer should wait")
            return
        }
        // There is room for weight 1, but p1 is first in line.
        #expect(describe(channel.send(3, weight: 1)) == "suspend 3")
        #expect(describe(channel.receive()) == "element 1 [\"p1 sent\"]")
    }

    @Test("with a low watermark, producers resume only once the level drained to it")
    func lowWatermarkHysteresis() {
        var channel = machine(capacity: 4, low: 1)
        for value in 1...4 { _ = channel.send(value, weight: 1) }
        guard case .suspended = channel.sendOrWait(5, weight: 1, id: 1, token: "p1", isCancelled: false) else {
            Issue.record("producer should wait")
            return
        }
        #expect(describe(channel.receive()) == "element 1 []")  // level 3
        #expect(describe(channel.receive()) == "element 2 []")  // level 2
        // A new producer is not let in while draining, even though there is room.
        #expect(describe(channel.send(9, weight: 1)) == "suspend 9")
        #expect(describe(channel.receive()) == "element 3 [\"p1 sent\"]")  // level 1 → resume, p1 enters
        #expect(channel.level == 2)
    }

    @Test("drop oldest evicts buffered elements to the callback")
    func dropOldest() {
        var channel = machine(capacity: 2, policy: .dropOldest)
        _ = channel.send(1, weight: 1)
        _ = channel.send(2, weight: 1)
        #expect(describe(channel.send(3, weight: 1)) == "enqueued [\"drop 1 dropped_oldest\"]")
        #expect(describe(channel.receive()) == "element 2 []")
        #expect(describe(channel.receive()) == "element 3 []")
    }

    @Test("drop newest discards the element being sent")
    func dropNewest() {
        var channel = machine(capacity: 1, policy: .dropNewest)
        _ = channel.send(1, weight: 1)
        #expect(describe(channel.send(2, weight: 1)) == "enqueued [\"drop 2 dropped_newest\"]")
        #expect(describe(channel.receive()) == "element 1 []")
    }

    @Test("reject hands the element back with channelFull")
    func reject() {
        var channel = machine(capacity: 1, policy: .reject)
        _ = channel.send(1, weight: 1)
        #expect(describe(channel.send(2, weight: 1)) == "failed 2 channelFull")
    }

    @Test("an element heavier than the capacity is refused")
    func tooLarge() {
        var channel = machine(capacity: 3, weighted: true)
        #expect(describe(channel.send(1, weight: 4)) == "failed 1 elementTooLarge")
        #expect(describe(channel.send(1, weight: 3)) == "enqueued []")
    }

    @Test("weights count against the capacity")
    func weights() {
        var channel = machine(capacity: 10, weighted: true)
        #expect(describe(channel.send(1, weight: 6)) == "enqueued []")
        #expect(describe(channel.send(2, weight: 5)) == "suspend 2")
        #expect(describe(channel.send(3, weight: 4)) == "enqueued []")
        #expect(channel.level == 10)
        _ = channel.receive()
        #expect(channel.level == 4)
    }

    @Test("a cancelled producer gets its element back, and the next one moves up")
    func producerCancelled() {
        var channel = machine(capacity: 2, weighted: true)
        _ = channel.send(1, weight: 1)
        _ = channel.sendOrWait(2, weight: 2, id: 1, token: "p1", isCancelled: false)
        _ = channel.sendOrWait(3, weight: 1, id: 2, token: "p2", isCancelled: false)
        #expect(describe(channel.producerCancelled(id: 1, code: .cancelled)) == ["p1 failed cancelled 2", "p2 sent"])
        #expect(describe(channel.producerCancelled(id: 1, code: .cancelled)) == [])
    }

    @Test("a producer cancelled before it suspends fails at once")
    func cancelledBeforeSuspend() {
        var channel = machine(capacity: 1)
        _ = channel.send(1, weight: 1)
        guard
            case .failed(let element, let code) = channel.sendOrWait(2, weight: 1, id: 1, token: "p", isCancelled: true)
        else {
            Issue.record("expected failure")
            return
        }
        #expect(element == 2)
        #expect(code == .cancelled)
        #expect(channel.producers.isEmpty)
    }

    @Test("a timed producer whose deadline passed before it registered fails with timedOut instead of waiting")
    func deadlinePassedBeforeRegistration() {
        var channel = machine(capacity: 1)
        _ = channel.send(1, weight: 1)
        guard
            case .failed(let element, let code) = channel.sendOrWait(
                2,
                weight: 1,
                id: 1,
                token: "p",
                isCancelled: false,
                deadlinePassed: true
            )
        else {
            Issue.record("expected failure")
            return
        }
        #expect(element == 2)
        #expect(code == .timedOut)
        #expect(channel.producers.isEmpty)
    }

    @Test("a cancelled consumer is failed and removed; a resumed one is not touched")
    func consumerCancelled() {
        var channel = machine()
        _ = channel.receiveOrWait(id: 1, token: "c1", isCancelled: false)
        #expect(describe(channel.consumerCancelled(id: 1)) == ["c1 <- cancelled"])
        #expect(describe(channel.consumerCancelled(id: 1)) == [])
        #expect(channel.consumers.isEmpty)
    }

    @Test("finish hands waiting producers their elements and lets consumers drain")
    func finish() {
        var channel = machine(capacity: 1)
        _ = channel.send(1, weight: 1)
        _ = channel.sendOrWait(2, weight: 1, id: 1, token: "p1", isCancelled: false)
        #expect(describe(channel.finish()) == ["p1 failed channelFinished 2"])
        #expect(describe(channel.send(3, weight: 1)) == "failed 3 channelFinished")
        #expect(describe(channel.receive()) == "element 1 []")
        #expect(describe(channel.receive()) == "end")
    }

    @Test("finish ends waiting consumers when nothing is buffered")
    func finishEndsConsumers() {
        var channel = machine()
        _ = channel.receiveOrWait(id: 1, token: "c1", isCancelled: false)
        _ = channel.receiveOrWait(id: 2, token: "c2", isCancelled: false)
        #expect(describe(channel.finish()) == ["c1 <- end", "c2 <- end"])
    }

    @Test("cancel drops the buffer to the callback and fails producers")
    func cancel() {
        var channel = machine(capacity: 1)
        _ = channel.send(1, weight: 1)
        _ = channel.sendOrWait(2, weight: 1, id: 1, token: "p1", isCancelled: false)
        #expect(describe(channel.cancel()) == ["p1 failed channelCancelled 2", "drop 1 channel_cancelled"])
        #expect(describe(channel.receive()) == "end")
        #expect(describe(channel.send(3, weight: 1)) == "failed 3 channelCancelled")
    }

    @Test("a permit holds room until it sends or is released")
    func permits() {
        var channel = machine(capacity: 1)
        #expect(channel.reserve(weight: 1) == .reserved)
        #expect(describe(channel.send(1, weight: 1)) == "suspend 1")
        #expect(channel.reserveOrWait(weight: 1, id: 1, token: "r1", isCancelled: false) == .suspended)
        #expect(describe(channel.permitReleased(weight: 1)) == ["r1 reserved"])
        _ = channel.receiveOrWait(id: 2, token: "c1", isCancelled: false)
        #expect(describe(channel.permitSent(5, weight: 1)) == ["c1 <- 5"])
        #expect(channel.level == 0)
    }

    @Test("a permit used after cancel sends its element to the drop callback")
    func permitAfterCancel() {
        var channel = machine(capacity: 1)
        #expect(channel.reserve(weight: 1) == .reserved)
        _ = channel.cancel()
        #expect(describe(channel.permitSent(5, weight: 1)) == ["drop 5 channel_cancelled"])
    }

    @Test("reserve under the reject policy fails at once when full")
    func reserveReject() {
        var channel = machine(capacity: 1, policy: .reject)
        _ = channel.send(1, weight: 1)
        #expect(channel.reserve(weight: 1) == .failed(.channelFull))
    }
}
