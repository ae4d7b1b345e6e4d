import DequeModule
import Synchronization

/// The floor: a plain bounded channel made of one `Mutex`, a `Deque` buffer and two queues of continuations.
///
/// No cancellation handling, no policies, no metrics, no element hand-back: it shows what the lock-and-deque shape
/// costs by itself, so BoundedChannel's extra guarantees can be priced against it.
final class LockDequeChannel<Element: Sendable>: Sendable {
    struct State: ~Copyable {
        var buffer: Deque<Element>
        var producers: Deque<(Element, UnsafeContinuation<Void, Never>)> = []
        var consumers: Deque<UnsafeContinuation<Element?, Never>> = []
        var finished = false
    }

    enum SendAction {
        case done
        case resumeConsumer(UnsafeContinuation<Element?, Never>, Element)
        case suspend(Element)
    }

    enum ReceiveAction {
        case element(Element)
        case elementAndProducer(Element, UnsafeContinuation<Void, Never>)
        case end
        case suspend
    }

    let state: Mutex<State>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        self.state = Mutex(State(buffer: Deque(minimumCapacity: capacity)))
    }

    func send(_ element: Element) async {
        let action = state.withLock { state -> SendAction in
            if let consumer = state.consumers.popFirst() { return .resumeConsumer(consumer, element) }
            if state.buffer.count < capacity {
                state.buffer.append(element)
                return .done
            }
            return .suspend(element)
        }
        switch action {
        case .done:
            return
        case .resumeConsumer(let consumer, let element):
            consumer.resume(returning: element)
        case .suspend(let element):
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let action = state.withLock { state -> SendAction in
                    if let consumer = state.consumers.popFirst() { return .resumeConsumer(consumer, element) }
                    if state.buffer.count < capacity {
                        state.buffer.append(element)
                        return .done
                    }
                    state.producers.append((element, continuation))
                    return .suspend(element)
                }
                switch action {
                case .done:
                    continuation.resume()
                case .resumeConsumer(let consumer, let element):
                    consumer.resume(returning: element)
                    continuation.resume()
                case .suspend:
                    break
                }
            }
        }
    }

    func receive() async -> Element? {
        let action = state.withLock { state -> ReceiveAction in receiveLocked(&state) }
        switch action {
        case .element(let element):
            return element
        case .elementAndProducer(let element, let producer):
            producer.resume()
            return element
        case .end:
            return nil
        case .suspend:
            return await withUnsafeContinuation { (continuation: UnsafeContinuation<Element?, Never>) in
                let action = state.withLock { state -> ReceiveAction in
                    let action = receiveLocked(&state)
                    if case .suspend = action { state.consumers.append(continuation) }
                    return action
                }
                switch action {
                case .element(let element):
                    continuation.resume(returning: element)
                case .elementAndProducer(let element, let producer):
                    producer.resume()
                    continuation.resume(returning: element)
                case .end:
                    continuation.resume(returning: nil)
                case .suspend:
                    break
                }
            }
        }
    }

    private func receiveLocked(_ state: inout State) -> ReceiveAction {
        if let element = state.buffer.popFirst() {
            if let (waiting, producer) = state.producers.popFirst() {
                state.buffer.append(waiting)
                return .elementAndProducer(element, producer)
            }
            return .element(element)
        }
        if let (waiting, producer) = state.producers.popFirst() {
            return .elementAndProducer(waiting, producer)
        }
        return state.finished ? .end : .suspend
    }

    func finish() {
        let consumers = state.withLock { state -> Deque<UnsafeContinuation<Element?, Never>> in
            state.finished = true
            guard state.buffer.isEmpty else { return [] }
            defer { state.consumers.removeAll() }
            return state.consumers
        }
        for consumer in consumers { consumer.resume(returning: nil) }
    }
}
