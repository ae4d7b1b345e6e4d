import DequeModule

/// How a suspended producer (a `send` or a `reserve`) is resumed.
@usableFromInline
enum ChannelProducerResult<Element> {
    /// Indicates that the producer's element was buffered or handed to a consumer.
    case sent
    /// Indicates that the producer's reservation was granted: its weight now counts against the capacity.
    case reserved
    /// Indicates that the producer failed; a send gets its element back.
    case failed(Element?, BackpressureError.Code)
}

/// How a suspended consumer is resumed.
@usableFromInline
enum ChannelConsumerResult<Element> {
    /// Indicates that the consumer receives this element.
    case element(Element)
    /// Indicates that the channel ended: the consumer returns `nil`.
    case end
    /// Indicates that the consumer's wait failed (its task was cancelled).
    case failed(BackpressureError.Code)
}

/// The pure core of ``BoundedChannel``: a buffer, the waiting producers and consumers, and the rules between them.
///
/// It never locks, awaits, reads a clock or calls user code. Each event returns what the shell must do: resume
/// producers or consumers, and hand elements to the drop callback. It is generic over the waiter tokens so that
/// tests drive it with plain values while the shell stores continuations.
///
/// Invariants (checked by the tests):
/// 1. Consumers wait only while the buffer is empty.
/// 2. `level` = weight of buffered elements + weight reserved by outstanding permits, and `level <= capacity`
///    except transiently inside an event.
/// 3. Every element that enters an event leaves exactly once: buffered, handed to a consumer, returned in a
///    producer failure, or passed to the drop callback.
@usableFromInline
struct BoundedChannelStateMachine<Element, Producer, Consumer> {
    /// Where the channel is in its life.
    ///
    /// `open` → `finished` (by `finish()`) → `cancelled` (by `cancel()`); `open` → `cancelled` directly.
    @usableFromInline
    enum Lifecycle: Equatable, Sendable {
        case open
        case finished
        case cancelled
    }

    @usableFromInline
    typealias ProducerResult = ChannelProducerResult<Element>
    @usableFromInline
    typealias ConsumerResult = ChannelConsumerResult<Element>

    @usableFromInline
    struct ProducerWaiter {
        @usableFromInline var id: UInt64
        /// `nil` for a `reserve` waiter.
        @usableFromInline var element: Element?
        @usableFromInline var weight: Int
        @usableFromInline var token: Producer

        @inlinable
        init(id: UInt64, element: Element?, weight: Int, token: Producer) {
            self.id = id
            self.element = element
            self.weight = weight
            self.token = token
        }
    }

    @usableFromInline
    struct ConsumerWaiter {
        @usableFromInline var id: UInt64
        @usableFromInline var token: Consumer

        @inlinable
        init(id: UInt64, token: Consumer) {
            self.id = id
            self.token = token
        }
    }

    /// What the shell must do after an event.
    @usableFromInline
    struct Effects {
        @usableFromInline var producers: OneOrMany<(Producer, ProducerResult)>
        @usableFromInline var consumers: OneOrMany<(Consumer, ConsumerResult)>
        @usableFromInline var dropped: OneOrMany<(Element, DropReason)>

        @inlinable
        init() {
            self.producers = .none
            self.consumers = .none
            self.dropped = .none
        }

        @inlinable
        var isEmpty: Bool { producers.isEmpty && consumers.isEmpty && dropped.isEmpty }
    }

    // The common outcomes have their own small cases (`enqueued`, `deliver`, `elementAndProducer`) and the rare
    // `Effects` payloads are boxed (`indirect`), so the actions the hot paths return stay a few words wide:
    // measured, copying and destroying a wide action cost ~10% of a send.

    /// The outcome of `send` (no waiting).
    @usableFromInline
    enum SendAction {
        /// Indicates that the element was buffered; nothing else to do.
        case enqueued
        /// Indicates that the element must be handed to this waiting consumer.
        case deliver(Consumer, Element)
        /// Indicates that the element was enqueued or dropped by the policy; perform the effects (drops).
        indirect case enqueuedWithEffects(Effects)
        /// Indicates that there is no room and the policy is to wait; the element is handed back with an id for the
        /// waiter.
        case mustSuspend(Element, id: UInt64)
        /// Indicates that the send failed; the element is handed back.
        case failed(Element, BackpressureError.Code)
    }

    /// The outcome of `sendOrWait`.
    @usableFromInline
    enum SendOrWaitAction {
        /// Indicates that the element was buffered; resume the caller.
        case enqueued
        /// Indicates that the element must be handed to this waiting consumer; then resume the caller.
        case deliver(Consumer, Element)
        /// Indicates that the element went through; perform the effects and resume the caller.
        indirect case enqueuedWithEffects(Effects)
        /// Indicates that the producer is now waiting; the numbers are for the metrics.
        case suspended(bufferedElements: Int, waitingProducers: Int)
        /// Indicates that the send failed; the element is handed back.
        case failed(Element, BackpressureError.Code)
    }

    /// The outcome of `receive` (no waiting).
    @usableFromInline
    enum ReceiveAction {
        /// Indicates that the consumer takes this element; nothing else to do.
        case element(Element)
        /// Indicates that the consumer takes this element and one waiting producer must be resumed.
        case elementAndProducer(Element, Producer, ProducerResult)
        /// Indicates that the consumer takes this element; perform the effects (admitted producers).
        indirect case elementAndEffects(Element, Effects)
        /// Indicates that the channel ended and is drained.
        case end
        /// Indicates that the buffer is empty and the channel is open; the id is for the waiter.
        case mustSuspend(id: UInt64)
    }

    /// The outcome of `receiveOrWait`.
    @usableFromInline
    enum ReceiveOrWaitAction {
        case element(Element)
        case elementAndProducer(Element, Producer, ProducerResult)
        indirect case elementAndEffects(Element, Effects)
        case end
        case suspended
        case failed(BackpressureError.Code)
    }

    /// The outcome of `reserve` and `reserveOrWait`.
    @usableFromInline
    enum ReserveAction: Equatable {
        /// Indicates that the reservation was granted at once.
        case reserved
        /// Indicates that there is no room (only from `reserve`).
        case mustSuspend
        /// Indicates that the reserving producer is now waiting (only from `reserveOrWait`).
        case suspended
        /// Indicates that the reservation failed.
        case failed(BackpressureError.Code)
    }

    @usableFromInline var buffer: Deque<Element>
    /// Weights of the buffered elements, parallel to `buffer`; used only when `isWeighted`.
    @usableFromInline var weights: Deque<Int>
    @usableFromInline let isWeighted: Bool
    @usableFromInline var level: Int
    @usableFromInline var reserved: Int
    @usableFromInline var producers: Deque<ProducerWaiter>
    @usableFromInline var consumers: Deque<ConsumerWaiter>
    @usableFromInline var lifecycle: Lifecycle
    /// False after the buffer filled up under a low watermark, until the level drains to `resumeLevel`.
    @usableFromInline var admitting: Bool
    @usableFromInline let capacity: Int
    @usableFromInline let resumeLevel: Int
    @usableFromInline let overflow: OverflowPolicy
    @usableFromInline var nextID: UInt64

    /// Creates the state machine. The shell validates the numbers first.
    ///
    /// - Parameters:
    ///   - capacity: The most weight the buffer and permits may hold.
    ///   - resumeLevel: Producers blocked by a full buffer resume once the level is at or below this; pass
    ///     `capacity` for no hysteresis.
    ///   - overflow: What a send does with no room.
    ///   - isWeighted: Whether elements carry their own weight.
    @inlinable
    init(capacity: Int, resumeLevel: Int, overflow: OverflowPolicy, isWeighted: Bool) {
        self.buffer = Deque(minimumCapacity: min(capacity, 4096))
        self.weights = isWeighted ? Deque(minimumCapacity: min(capacity, 4096)) : Deque()
        self.isWeighted = isWeighted
        self.level = 0
        self.reserved = 0
        self.producers = Deque()
        self.consumers = Deque()
        self.lifecycle = .open
        self.admitting = true
        self.capacity = capacity
        self.resumeLevel = resumeLevel
        self.overflow = overflow
        self.nextID = 0
    }

    @inlinable
    mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    @inlinable
    var bufferedCount: Int { buffer.count }

    // MARK: Producers

    /// A producer offers an element and will not wait here.
    @inlinable @inline(__always)
    mutating func send(_ element: Element, weight: Int) -> SendAction {
        guard lifecycle == .open else {
            return .failed(element, lifecycle == .finished ? .channelFinished : .channelCancelled)
        }
        // 1. A waiting consumer means the buffer is empty: hand the element over directly.
        if let consumer = consumers.popFirst() {
            return .deliver(consumer.token, element)
        }
        if admitting && producers.isEmpty && level + weight <= capacity {
            append(element, weight: weight)
            return .enqueued
        }
        if weight > capacity {
            return .failed(element, .elementTooLarge)
        }
        switch overflow.base {
        case .suspend:
            // 2. The buffer is full (or earlier producers wait): engage the low-watermark hysteresis.
            if resumeLevel < capacity { admitting = false }
            return .mustSuspend(element, id: makeID())
        case .reject:
            return .failed(element, .channelFull)
        case .dropOldest:
            var effects = Effects()
            while level + weight > capacity, let oldest = popBuffered() {
                effects.dropped.append((oldest, .droppedOldest))
            }
            if level + weight <= capacity {
                append(element, weight: weight)
            } else {
                // 3. Reserved permits hold the room: the new element cannot fit even with an empty buffer.
                effects.dropped.append((element, .droppedNewest))
            }
            return .enqueuedWithEffects(effects)
        case .dropNewest:
            var effects = Effects()
            effects.dropped = .one((element, .droppedNewest))
            return .enqueuedWithEffects(effects)
        }
    }

    /// A producer offers an element and waits with `token` if there is no room.
    ///
    /// `isCancelled` and `deadlinePassed` are read under the shell's lock: a cancellation or a timer that came before
    /// the producer could register found no waiter to fail, so registration itself must see them.
    @inlinable
    mutating func sendOrWait(
        _ element: Element,
        weight: Int,
        id: UInt64,
        token: Producer,
        isCancelled: Bool,
        deadlinePassed: Bool = false
    ) -> SendOrWaitAction {
        switch send(element, weight: weight) {
        case .enqueued:
            return .enqueued
        case .deliver(let consumer, let element):
            return .deliver(consumer, element)
        case .enqueuedWithEffects(let effects):
            return .enqueuedWithEffects(effects)
        case .failed(let element, let code):
            return .failed(element, code)
        case .mustSuspend(let element, _):
            // 4. The task was cancelled before it could suspend: its cancellation handler already ran and found
            //    nothing to cancel, so fail here instead of waiting forever.
            if isCancelled { return .failed(element, .cancelled) }
            // 5. Likewise for the timer of a timed send: it fired before the producer registered, found no waiter,
            //    and recorded that the deadline passed. Waiting now would wait with no deadline.
            if deadlinePassed { return .failed(element, .timedOut) }
            producers.append(ProducerWaiter(id: id, element: element, weight: weight, token: token))
            return .suspended(bufferedElements: buffer.count, waitingProducers: producers.count)
        }
    }

    /// A producer asks to reserve `weight` of room without waiting.
    @inlinable
    mutating func reserve(weight: Int) -> ReserveAction {
        guard lifecycle == .open else {
            return .failed(lifecycle == .finished ? .channelFinished : .channelCancelled)
        }
        if weight > capacity { return .failed(.elementTooLarge) }
        if admitting && producers.isEmpty && level + weight <= capacity {
            level += weight
            reserved += weight
            return .reserved
        }
        if overflow == .reject { return .failed(.channelFull) }
        if resumeLevel < capacity { admitting = false }
        return .mustSuspend
    }

    /// A producer asks to reserve room and waits with `token` if there is none.
    @inlinable
    mutating func reserveOrWait(weight: Int, id: UInt64, token: Producer, isCancelled: Bool) -> ReserveAction {
        let action = reserve(weight: weight)
        guard action == .mustSuspend else { return action }
        if isCancelled { return .failed(.cancelled) }
        producers.append(ProducerWaiter(id: id, element: nil, weight: weight, token: token))
        return .suspended
    }

    /// A permit was used: its element goes to a consumer or the buffer; its reservation ends.
    @inlinable
    mutating func permitSent(_ element: Element, weight: Int) -> Effects {
        level -= weight
        reserved -= weight
        var effects = Effects()
        if lifecycle == .cancelled {
            effects.dropped = .one((element, .channelCancelled))
        } else if let consumer = consumers.popFirst() {
            effects.consumers = .one((consumer.token, .element(element)))
        } else {
            append(element, weight: weight)
        }
        admitProducers(&effects)
        return effects
    }

    /// A permit was dropped unused: its reservation ends.
    @inlinable
    mutating func permitReleased(weight: Int) -> Effects {
        level -= weight
        reserved -= weight
        var effects = Effects()
        admitProducers(&effects)
        return effects
    }

    /// A waiting producer gave up (its task was cancelled, or its timeout fired).
    ///
    /// Does nothing when the producer was already resumed: the race between a cancellation and a resumption is
    /// decided by whichever takes the lock first.
    @inlinable
    mutating func producerCancelled(id: UInt64, code: BackpressureError.Code) -> Effects {
        var effects = Effects()
        guard let index = producers.firstIndex(where: { $0.id == id }) else { return effects }
        let waiter = producers.remove(at: index)
        effects.producers = .one((waiter.token, .failed(waiter.element, code)))
        // 6. The head may have been a heavy element blocking lighter ones behind it.
        if index == 0 { admitProducers(&effects) }
        return effects
    }

    // MARK: Consumers

    /// A consumer asks for an element and will not wait here.
    @inlinable @inline(__always)
    mutating func receive() -> ReceiveAction {
        if let element = popBuffered() {
            if producers.isEmpty {
                if !admitting && level <= resumeLevel { admitting = true }
                return .element(element)
            }
            var effects = Effects()
            admitProducers(&effects)
            if effects.consumers.isEmpty, effects.dropped.isEmpty, case .one(let (producer, result)) = effects.producers
            {
                return .elementAndProducer(element, producer, result)
            }
            return effects.isEmpty ? .element(element) : .elementAndEffects(element, effects)
        }
        return lifecycle == .open ? .mustSuspend(id: makeID()) : .end
    }

    /// A consumer asks for an element and waits with `token` if there is none.
    @inlinable
    mutating func receiveOrWait(id: UInt64, token: Consumer, isCancelled: Bool) -> ReceiveOrWaitAction {
        switch receive() {
        case .element(let element):
            return .element(element)
        case .elementAndProducer(let element, let producer, let result):
            return .elementAndProducer(element, producer, result)
        case .elementAndEffects(let element, let effects):
            return .elementAndEffects(element, effects)
        case .end:
            return .end
        case .mustSuspend:
            if isCancelled { return .failed(.cancelled) }
            consumers.append(ConsumerWaiter(id: id, token: token))
            return .suspended
        }
    }

    /// A waiting consumer's task was cancelled. Does nothing if it was already resumed.
    @inlinable
    mutating func consumerCancelled(id: UInt64) -> Effects {
        var effects = Effects()
        guard let index = consumers.firstIndex(where: { $0.id == id }) else { return effects }
        let waiter = consumers.remove(at: index)
        effects.consumers = .one((waiter.token, .failed(.cancelled)))
        return effects
    }

    // MARK: Termination

    /// No more sends: waiting producers get their elements back, consumers drain the buffer and then end.
    @inlinable
    mutating func finish() -> Effects {
        var effects = Effects()
        guard lifecycle == .open else { return effects }
        lifecycle = .finished
        failAllProducers(&effects, code: .channelFinished)
        if buffer.isEmpty {
            while let consumer = consumers.popFirst() { effects.consumers.append((consumer.token, .end)) }
        }
        return effects
    }

    /// Both sides end now: buffered elements go to the drop callback, producers get theirs back, consumers end.
    @inlinable
    mutating func cancel() -> Effects {
        var effects = Effects()
        guard lifecycle != .cancelled else { return effects }
        lifecycle = .cancelled
        while let element = popBuffered() { effects.dropped.append((element, .channelCancelled)) }
        failAllProducers(&effects, code: .channelCancelled)
        while let consumer = consumers.popFirst() { effects.consumers.append((consumer.token, .end)) }
        return effects
    }

    // MARK: Helpers

    @inlinable @inline(__always)
    mutating func append(_ element: Element, weight: Int) {
        buffer.append(element)
        if isWeighted { weights.append(weight) }
        level += weight
    }

    @inlinable @inline(__always)
    mutating func popBuffered() -> Element? {
        guard let element = buffer.popFirst() else { return nil }
        level -= isWeighted ? weights.removeFirst() : 1
        return element
    }

    @inlinable
    mutating func failAllProducers(_ effects: inout Effects, code: BackpressureError.Code) {
        while let waiter = producers.popFirst() {
            effects.producers.append((waiter.token, .failed(waiter.element, code)))
        }
    }

    /// Lets waiting producers in, in FIFO order, while they fit.
    ///
    /// With a low watermark the hysteresis applies: once the head did not fit, nobody is admitted until the level
    /// has drained to `resumeLevel`; then producers are admitted until the head does not fit again.
    @inlinable
    mutating func admitProducers(_ effects: inout Effects) {
        guard lifecycle == .open else { return }
        if !admitting {
            guard level <= resumeLevel else { return }
            admitting = true
        }
        while let head = producers.first {
            if level + head.weight > capacity {
                if resumeLevel < capacity { admitting = false }
                return
            }
            producers.removeFirst()
            if let element = head.element {
                if let consumer = consumers.popFirst() {
                    effects.consumers.append((consumer.token, .element(element)))
                } else {
                    append(element, weight: head.weight)
                }
                effects.producers.append((head.token, .sent))
            } else {
                level += head.weight
                reserved += head.weight
                effects.producers.append((head.token, .reserved))
            }
        }
    }
}

extension ChannelProducerResult: Sendable where Element: Sendable {}
extension ChannelConsumerResult: Sendable where Element: Sendable {}
