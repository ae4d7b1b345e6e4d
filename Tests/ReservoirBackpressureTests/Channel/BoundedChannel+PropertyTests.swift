import Synchronization
import ReservoirTestClock
import Testing

@testable import ReservoirBackpressure

/// Random interleavings of send, receive, cancel, timeout, permits, finish and cancel never lose or duplicate an
/// element: each one sent is received once, handed back once, or dropped once.
@Suite("Bounded channel properties")
struct BoundedChannelPropertyTests {
    struct Ledger {
        var sent: Set<Int> = []
        var received: [Int] = []
        var handedBack: [Int] = []
        var dropped: [Int] = []

        mutating func apply(_ effects: TestChannel.Effects) {
            effects.consumers.visit { _, result in
                if case .element(let value) = result { received.append(value) }
            }
            effects.producers.visit { _, result in
                if case .failed(let value?, _) = result { handedBack.append(value) }
            }
            effects.dropped.visit { value, _ in dropped.append(value) }
        }

        func check() {
            let all = received + handedBack + dropped
            #expect(all.count == sent.count, "every element accounted for exactly once")
            #expect(Set(all) == sent)
        }
    }

    static let policies: [(OverflowPolicy, Bool, Bool)] = [
        (.suspend, false, false), (.suspend, true, false), (.suspend, false, true), (.suspend, true, true),
        (.dropOldest, false, false), (.dropOldest, false, true), (.dropNewest, false, false),
        (.reject, false, true),
    ]

    @Test("state machine: random interleavings account for every element", arguments: 0..<8)
    func stateMachineInterleavings(policyIndex: Int) {
        let (policy, hysteresis, weighted) = Self.policies[policyIndex]
        for seed in UInt64(1)...40 {
            var random = SeededGenerator(seed: seed &* 7919 &+ UInt64(policyIndex))
            let capacity = Int.random(in: 1...6, using: &random)
            let low = hysteresis ? Int.random(in: 0..<capacity, using: &random) : capacity
            var machine = TestChannel(capacity: capacity, resumeLevel: low, overflow: policy, isWeighted: weighted)
            var ledger = Ledger()
            var nextValue = 0
            var waitingProducers: [UInt64] = []
            var waitingConsumers: [UInt64] = []
            var permits: [Int] = []
            var reserveWaiters: [UInt64: Int] = [:]
            var nextID: UInt64 = 0

            func track(_ effects: TestChannel.Effects) {
                ledger.apply(effects)
                effects.producers.visit { token, result in
                    let id = UInt64(token.dropFirst())!
                    waitingProducers.removeAll { $0 == id }
                    if let weight = reserveWaiters.removeValue(forKey: id), case .reserved = result {
                        permits.append(weight)
                    }
                }
                effects.consumers.visit { token, _ in
                    let id = UInt64(token.dropFirst())!
                    waitingConsumers.removeAll { $0 == id }
                }
            }

            for _ in 0..<300 {
                nextID += 1
                let weight = weighted ? Int.random(in: 1...(capacity + 1), using: &random) : 1
                switch Int.random(in: 0..<12, using: &random) {
                case 0, 1, 2:
                    nextValue += 1
                    ledger.sent.insert(nextValue)
                    switch machine.sendOrWait(
                        nextValue,
                        weight: weight,
                        id: nextID,
                        token: "p\(nextID)",
                        isCancelled: Bool.random(using: &random) && Bool.random(using: &random)
                    ) {
                    case .enqueued: break
                    case .deliver(_, let value): ledger.received.append(value)
                    case .enqueuedWithEffects(let effects): track(effects)
                    case .suspended: waitingProducers.append(nextID)
                    case .failed(let value, _): ledger.handedBack.append(value)
                    }
                case 3, 4, 5:
                    switch machine.receiveOrWait(id: nextID, token: "c\(nextID)", isCancelled: false) {
                    case .element(let value):
                        ledger.received.append(value)
                    case .elementAndProducer(let value, let producer, let result):
                        ledger.received.append(value)
                        var effects = TestChannel.Effects()
                        effects.producers = .one((producer, result))
                        track(effects)
                    case .elementAndEffects(let value, let effects):
                        ledger.received.append(value)
                        track(effects)
                    case .suspended: waitingConsumers.append(nextID)
                    case .end, .failed: break
                    }
                case 6:
                    if let id = waitingProducers.randomElement(using: &random) {
                        let code: BackpressureError.Code = Bool.random(using: &random) ? .cancelled : .timedOut
                        track(machine.producerCancelled(id: id, code: code))
                    }
                case 7:
                    if let id = waitingConsumers.randomElement(using: &random) {
                        track(machine.consumerCancelled(id: id))
                    }
                case 8:
                    switch machine.reserveOrWait(weight: weight, id: nextID, token: "r\(nextID)", isCancelled: false) {
                    case .reserved: permits.append(weight)
                    case .suspended:
                        waitingProducers.append(nextID)
                        reserveWaiters[nextID] = weight
                    case .failed, .mustSuspend: break
                    }
                case 9:
                    if !permits.isEmpty {
                        let weight = permits.removeLast()
                        if Bool.random(using: &random) {
                            nextValue += 1
                            ledger.sent.insert(nextValue)
                            track(machine.permitSent(nextValue, weight: weight))
                        } else {
                            track(machine.permitReleased(weight: weight))
                        }
                    }
                case 10:
                    if Int.random(in: 0..<20, using: &random) == 0 { track(machine.finish()) }
                default:
                    if Int.random(in: 0..<40, using: &random) == 0 { track(machine.cancel()) }
                }
                #expect(machine.level <= capacity || machine.reserved > 0)
                #expect(machine.consumers.isEmpty || machine.buffer.isEmpty)
                #expect(
                    machine.level == machine.reserved + (weighted ? machine.weights.reduce(0, +) : machine.buffer.count)
                )
            }
            // Use or release every permit, then cancel: whatever is left is dropped or handed back.
            for weight in permits {
                nextValue += 1
                ledger.sent.insert(nextValue)
                track(machine.permitSent(nextValue, weight: weight))
            }
            track(machine.cancel())
            ledger.check()
            #expect(machine.producers.isEmpty)
            #expect(machine.consumers.isEmpty)
        }
    }

    @Test("shell: concurrent producers and consumers with cancellations and timeouts lose nothing", arguments: 0..<6)
    func concurrentInterleavings(seed: Int) async throws {
        let (policy, hysteresis, _) = Self.policies[seed % Self.policies.count]
        let dropped = Collector<Int>()
        var configuration = BoundedChannel<Int>.Configuration(capacity: 1 + seed % 4)
        configuration.overflowPolicy = policy
        if hysteresis { configuration.lowWatermark = 0 }
        configuration.onDrop = { value, _ in dropped.append(value) }
        let channel = try BoundedChannel(configuration: configuration)
        let clock = ManualClock()
        let handedBack = Collector<Int>()
        let perProducer = 300

        let received = await withTaskGroup(of: [Int].self) { group in
            var producers: [Task<Void, Never>] = []
            for producer in 0..<4 {
                producers.append(
                    Task {
                        var random = SeededGenerator(seed: UInt64(seed * 100 + producer))
                        for index in 0..<perProducer {
                            let value = producer * 1_000_000 + index
                            do throws(BoundedChannel<Int>.SendError) {
                                if Bool.random(using: &random) {
                                    try await channel.send(value, timeout: .milliseconds(5), clock: clock)
                                } else {
                                    try await channel.send(value)
                                }
                            } catch {
                                handedBack.append(error.element)
                            }
                        }
                    }
                )
            }
            for _ in 0..<3 {
                group.addTask {
                    var values: [Int] = []
                    while true {
                        do {
                            guard let value = try await channel.receive() else { return values }
                            values.append(value)
                        } catch {
                            return values
                        }
                    }
                }
            }
            // Disturb: advance the clock (timeouts fire), cancel one producer midway, then finish.
            var random = SeededGenerator(seed: UInt64(seed))
            for round in 0..<200 {
                clock.advance(by: .milliseconds(Int.random(in: 0...6, using: &random)))
                if round == 50 { producers[seed % 4].cancel() }
                await Task.yield()
            }
            for producer in producers { producer.cancel() }
            for producer in producers { await producer.value }
            if seed.isMultiple(of: 2) { channel.finish() } else { channel.cancel() }
            var all: [Int] = []
            for await values in group { all += values }
            return all
        }
        let total = received.count + handedBack.values.count + dropped.values.count
        #expect(total == 4 * perProducer)
        let unique = Set(received + handedBack.values + dropped.values)
        #expect(unique.count == 4 * perProducer)
    }
}
