import AsyncAlgorithms
import ReservoirBackpressure

struct Scenario: Sendable {
    var name: String
    var producers: Int
    var consumers: Int
}

/// One channel implementation under test: moves `messages` Ints from the scenario's producers to its consumers.
struct Contender: Sendable {
    var name: String
    var singleConsumerOnly: Bool
    var run: @Sendable (Scenario, Int, Int) async -> (delivered: Int, dropped: Int)
}

/// Sends `perProducer` values from each of `producers` tasks and receives them on `consumers` tasks; `finish` runs
/// once every producer is done.
func runGeneric(
    _ scenario: Scenario,
    messages: Int,
    send: @escaping @Sendable (Int) async -> Void,
    receiveAll: @escaping @Sendable () async -> Int,
    finish: @escaping @Sendable () -> Void
) async -> Int {
    await withTaskGroup(of: Int.self) { consumers in
        for _ in 0..<scenario.consumers {
            consumers.addTask { await receiveAll() }
        }
        await withTaskGroup(of: Void.self) { producers in
            let perProducer = messages / scenario.producers
            for producer in 0..<scenario.producers {
                producers.addTask {
                    let base = producer * perProducer
                    for value in base..<(base + perProducer) { await send(value) }
                }
            }
        }
        finish()
        var delivered = 0
        for await count in consumers { delivered += count }
        return delivered
    }
}

let capacity = 64

let contenders: [Contender] = [
    Contender(name: "bounded_channel", singleConsumerOnly: false) { scenario, messages, _ in
        let channel = try! BoundedChannel<Int>(capacity: capacity)
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in try? await channel.send(value) },
            receiveAll: {
                var count = 0
                do {
                    while try await channel.receive() != nil { count += 1 }
                } catch {}
                return count
            },
            finish: { channel.finish() }
        )
        return (delivered, 0)
    },
    Contender(name: "bounded_channel_wm32_64", singleConsumerOnly: false) { scenario, messages, _ in
        let channel = try! BoundedChannel<Int>(configuration: .watermark(low: 32, high: 64))
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in try? await channel.send(value) },
            receiveAll: {
                var count = 0
                do {
                    while try await channel.receive() != nil { count += 1 }
                } catch {}
                return count
            },
            finish: { channel.finish() }
        )
        return (delivered, 0)
    },
    Contender(name: "lock_deque_floor", singleConsumerOnly: false) { scenario, messages, _ in
        let channel = LockDequeChannel<Int>(capacity: capacity)
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in await channel.send(value) },
            receiveAll: {
                var count = 0
                while await channel.receive() != nil { count += 1 }
                return count
            },
            finish: { channel.finish() }
        )
        return (delivered, 0)
    },
    Contender(name: "async_channel", singleConsumerOnly: false) { scenario, messages, _ in
        let channel = AsyncChannel<Int>()
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in await channel.send(value) },
            receiveAll: {
                var count = 0
                for await _ in channel { count += 1 }
                return count
            },
            finish: { channel.finish() }
        )
        return (delivered, 0)
    },
    Contender(name: "async_stream_unbounded", singleConsumerOnly: true) { scenario, messages, _ in
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .unbounded)
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in continuation.yield(value) },
            receiveAll: {
                var count = 0
                for await _ in stream { count += 1 }
                return count
            },
            finish: { continuation.finish() }
        )
        return (delivered, 0)
    },
    Contender(name: "async_stream_oldest64", singleConsumerOnly: true) { scenario, messages, _ in
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingOldest(capacity))
        let delivered = await runGeneric(
            scenario,
            messages: messages,
            send: { value in _ = continuation.yield(value) },
            receiveAll: {
                var count = 0
                for await _ in stream { count += 1 }
                return count
            },
            finish: { continuation.finish() }
        )
        return (delivered, messages - delivered)
    },
    Contender(name: "mpsc_channel_wm32_64", singleConsumerOnly: true) { scenario, messages, _ in
        await runMPSC(scenario, messages: messages)
    },
]

/// Holds one `~Copyable` MPSC source while it moves into a producer task; taken exactly once.
final class SourceBox: @unchecked Sendable {
    // Unchecked: `source` is written before the task starts and taken once by that task; no other access.
    var source: MultiProducerSingleConsumerAsyncChannel<Int, Never>.Source?

    init(_ source: consuming MultiProducerSingleConsumerAsyncChannel<Int, Never>.Source) {
        self.source = consume source
    }
}

func runMPSC(_ scenario: Scenario, messages: Int) async -> (delivered: Int, dropped: Int) {
    var channelAndSource = MultiProducerSingleConsumerAsyncChannel.makeChannel(
        of: Int.self,
        backpressureStrategy: .watermark(low: 32, high: 64)
    )
    var channel = channelAndSource.takeChannel()
    var boxes: [SourceBox] = []
    for _ in 1..<scenario.producers {
        boxes.append(SourceBox(channelAndSource.source.makeAdditionalSource()))
    }
    boxes.append(SourceBox(channelAndSource.source))
    let perProducer = messages / scenario.producers
    return await withTaskGroup(of: Void.self) { group in
        for (producer, box) in boxes.enumerated() {
            group.addTask {
                var source = box.source.take()!
                let base = producer * perProducer
                for value in base..<(base + perProducer) { try? await source.send(value) }
                source.finish()
            }
        }
        var count = 0
        while await channel.next() != nil { count += 1 }
        return (count, 0)
    }
}
