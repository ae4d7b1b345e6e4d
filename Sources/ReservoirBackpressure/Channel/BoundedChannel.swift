import CoreMetrics
import DequeModule
import Logging
import Synchronization

/// A multi-producer, multi-consumer async channel with a capacity, overflow policies and no silent loss.
///
/// Producers `send`; consumers iterate the channel (or call ``receive()``). Each element goes to exactly one consumer;
/// waiting consumers are served in FIFO order, and so are waiting producers.
///
/// ```swift
/// let channel = try BoundedChannel<Int>(capacity: 64)
/// async let consumer: Int = {
///     var sum = 0
///     for try await value in channel { sum += value }
///     return sum
/// }()
/// for value in 1...100 { try await channel.send(value) }
/// channel.finish()
/// print(try await consumer)  // 5050
/// ```
///
/// **Nothing is lost silently.** Every element a producer hands in ends in exactly one of four places: a consumer,
/// the caller (inside a ``SendError`` when the send is cancelled, times out or meets a finished or cancelled
/// channel, or when ``trySend(_:)`` finds no room), or the ``Configuration/onDrop`` callback (when a drop policy
/// evicts it or the channel is cancelled with it buffered).
///
/// **Speed.** The state lives behind one `Mutex`; a send or receive that does not wait takes the lock once and
/// allocates nothing. The hot paths are `@inlinable`, so they are specialised for your element type.
public final class BoundedChannel<Element: Sendable>: Sendable {
    @usableFromInline
    typealias ProducerContinuation = UnsafeContinuation<ChannelProducerResult<Element>, Never>
    @usableFromInline
    typealias ConsumerContinuation = UnsafeContinuation<ChannelConsumerResult<Element>, Never>
    @usableFromInline
    typealias StateMachine = BoundedChannelStateMachine<Element, ProducerContinuation, ConsumerContinuation>

    /// A send that did not go through, with the element handed back.
    ///
    /// ``error``'s code says why: ``BackpressureError/Code/cancelled``, ``BackpressureError/Code/timedOut``,
    /// ``BackpressureError/Code/channelFull``, ``BackpressureError/Code/channelFinished``,
    /// ``BackpressureError/Code/channelCancelled`` or ``BackpressureError/Code/elementTooLarge``.
    public struct SendError: Error, CustomStringConvertible {
        /// The element that was not sent. It was not enqueued, and it will not reach a consumer.
        public var element: Element
        /// Why the send failed.
        public var error: BackpressureError

        /// Shorthand for `error.code`.
        public var code: BackpressureError.Code { error.code }

        @inlinable
        init(element: Element, error: BackpressureError) {
            self.element = element
            self.error = error
        }

        public var description: String { "BoundedChannel.SendError: \(error)" }
    }

    /// A snapshot of the channel's state, for dashboards and tests.
    public struct Statistics: Hashable, Sendable {
        /// Elements buffered now.
        public var bufferedElements: Int
        /// Weight held now: buffered elements plus outstanding permits.
        public var level: Int
        /// Producers suspended in `send` or `reserve`.
        public var waitingProducers: Int
        /// Consumers suspended in `receive`.
        public var waitingConsumers: Int
        /// Whether `finish()` or `cancel()` was called.
        public var isClosed: Bool
    }

    @usableFromInline let state: Mutex<StateMachine>
    @usableFromInline let weigh: (@Sendable (Element) -> Int)?
    @usableFromInline let onDrop: (@Sendable (Element, DropReason) -> Void)?
    @usableFromInline let metrics: ChannelMetrics
    let logger: Logger?
    let label: String
    /// The channel's capacity.
    public let capacity: Int

    /// Creates a channel from validated settings.
    ///
    /// - Parameter configuration: The settings.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming the field (`capacity`, `lowWatermark`).
    public init(configuration: Configuration) throws(BackpressureError) {
        try configuration.validate()
        self.capacity = configuration.capacity
        self.weigh = configuration.weight
        self.onDrop = configuration.onDrop
        self.logger = configuration.logger
        self.label = configuration.label
        self.metrics = ChannelMetrics(
            label: configuration.label,
            factory: configuration.metricsFactory ?? MetricsSystem.factory
        )
        self.state = Mutex(
            StateMachine(
                capacity: configuration.capacity,
                resumeLevel: configuration.lowWatermark ?? configuration.capacity,
                overflow: configuration.overflowPolicy,
                isWeighted: configuration.weight != nil
            )
        )
    }

    /// Creates a channel that holds up to `capacity` elements, with the given overflow policy.
    ///
    /// - Parameters:
    ///   - capacity: The most elements buffered at once; at least 1.
    ///   - overflowPolicy: What a send does when full; default ``OverflowPolicy/suspend``.
    ///   - onDrop: Receives every element the channel discards (see ``Configuration/onDrop``).
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `capacity` when it is below 1.
    public convenience init(
        capacity: Int,
        overflowPolicy: OverflowPolicy = .suspend,
        onDrop: (@Sendable (Element, DropReason) -> Void)? = nil
    ) throws(BackpressureError) {
        var configuration = Configuration(capacity: capacity)
        configuration.overflowPolicy = overflowPolicy
        configuration.onDrop = onDrop
        try self.init(configuration: configuration)
    }

    // A channel released with elements still buffered passes them to the drop callback, so that elements owning
    // resources are never lost silently. No producer or consumer can be waiting here: a suspended task keeps the
    // channel alive.
    deinit {
        guard let onDrop else { return }
        let effects = state.withLock { $0.cancel() }
        effects.dropped.visit { element, reason in onDrop(element, reason) }
    }

    @inlinable
    func weight(of element: Element) -> Int {
        guard let weigh else { return 1 }
        return Swift.max(1, weigh(element))
    }

    // MARK: Sending

    /// Sends an element, suspending while the channel is full (with the ``OverflowPolicy/suspend`` policy).
    ///
    /// Returns once the element is buffered, handed to a consumer, or, under a drop policy, dropped by that policy
    /// (then the drop callback has it). Waiting producers are admitted in FIFO order.
    ///
    /// - Parameter element: The element to send.
    /// - Throws: ``SendError`` with the element handed back: ``BackpressureError/Code/cancelled`` when the task is
    ///   cancelled while waiting (or before), ``BackpressureError/Code/channelFinished`` or
    ///   ``BackpressureError/Code/channelCancelled`` when the channel is closed (also while waiting),
    ///   ``BackpressureError/Code/channelFull`` under ``OverflowPolicy/reject``, and
    ///   ``BackpressureError/Code/elementTooLarge`` for an element heavier than the capacity.
    @inlinable
    nonisolated(nonsending) public func send(_ element: Element) async throws(SendError) {
        let weight = self.weight(of: element)
        let action = state.withLock { $0.send(element, weight: weight) }
        switch action {
        case .enqueued:
            return
        case .deliver(let consumer, let element):
            consumer.resume(returning: .element(element))
        case .enqueuedWithEffects(let effects):
            perform(effects)
        case .failed(let element, let code):
            throw SendError(element: element, error: Self.error(code))
        case .mustSuspend(let element, let id):
            try await sendSuspending(element, weight: weight, id: id)
        }
    }

    /// Sends an element, giving up after `timeout` if the channel stays full.
    ///
    /// - Parameters:
    ///   - element: The element to send.
    ///   - timeout: How long to wait for room at most.
    ///   - clock: The clock that measures the timeout; `ContinuousClock` by default.
    /// - Throws: ``SendError`` as ``send(_:)`` does, and with ``BackpressureError/Code/timedOut`` when the timeout
    ///   passes first. The element is handed back in either case.
    @inlinable
    public func send<C: Clock<Duration>>(
        _ element: Element,
        timeout: Duration,
        clock: C = ContinuousClock()
    ) async throws(SendError) {
        let weight = self.weight(of: element)
        let action = state.withLock { $0.send(element, weight: weight) }
        switch action {
        case .enqueued:
            return
        case .deliver(let consumer, let element):
            consumer.resume(returning: .element(element))
        case .enqueuedWithEffects(let effects):
            perform(effects)
        case .failed(let element, let code):
            throw SendError(element: element, error: Self.error(code))
        case .mustSuspend(let element, let id):
            let deadline = clock.now.advanced(by: timeout)
            // The timer may fire before this producer registers (with a zero timeout it usually does): the record
            // tells registration so. See `WaiterDeadline`.
            let record = WaiterDeadline()
            let result: Result<Void, SendError> = await withTaskGroup(of: Void.self) { group in
                group.addTask { [self] in
                    do {
                        try await clock.sleep(until: deadline, tolerance: nil)
                    } catch {
                        return
                    }
                    self.producerTimedOut(id: id, deadline: record)
                }
                let result: Result<Void, SendError>
                do throws(SendError) {
                    try await sendSuspending(element, weight: weight, id: id, deadline: record)
                    result = .success(())
                } catch {
                    result = .failure(error)
                }
                group.cancelAll()
                return result
            }
            try result.get()
        }
    }

    /// Sends an element if there is room now, without waiting.
    ///
    /// Under a drop policy the send always succeeds (the policy may drop an element to the callback).
    ///
    /// - Parameter element: The element to send.
    /// - Throws: ``SendError`` with the element handed back: ``BackpressureError/Code/channelFull`` when there is
    ///   no room, ``BackpressureError/Code/channelFinished``, ``BackpressureError/Code/channelCancelled`` or
    ///   ``BackpressureError/Code/elementTooLarge``.
    @inlinable
    public func trySend(_ element: Element) throws(SendError) {
        let weight = self.weight(of: element)
        let action = state.withLock { $0.send(element, weight: weight) }
        switch action {
        case .enqueued:
            return
        case .deliver(let consumer, let element):
            consumer.resume(returning: .element(element))
        case .enqueuedWithEffects(let effects):
            perform(effects)
        case .failed(let element, let code):
            throw SendError(element: element, error: Self.error(code))
        case .mustSuspend(let element, _):
            throw SendError(element: element, error: Self.error(.channelFull))
        }
    }

    // Specialisable but never inlined: its locals (a clock instant, the continuation result) would otherwise be
    // allocated on the task allocator by every `send`, even those that never wait (measured: 4 allocations a call).
    @inlinable @inline(never)
    nonisolated(nonsending) func sendSuspending(
        _ element: Element,
        weight: Int,
        id: UInt64,
        deadline: WaiterDeadline? = nil
    ) async throws(SendError) {
        let start: ContinuousClock.Instant? = metrics.isEnabled ? .now : nil
        var didSuspend = false
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: ProducerContinuation) in
                let action: StateMachine.SendOrWaitAction = state.withLock {
                    $0.sendOrWait(
                        element,
                        weight: weight,
                        id: id,
                        token: continuation,
                        isCancelled: Task.isCancelled,
                        deadlinePassed: deadline?.hasPassed ?? false
                    )
                }
                switch action {
                case .enqueued:
                    continuation.resume(returning: .sent)
                case .deliver(let consumer, let element):
                    consumer.resume(returning: .element(element))
                    continuation.resume(returning: .sent)
                case .enqueuedWithEffects(let effects):
                    perform(effects)
                    continuation.resume(returning: .sent)
                case .failed(let element, let code):
                    continuation.resume(returning: .failed(element, code))
                case .suspended(let bufferedElements, _):
                    didSuspend = true
                    if start != nil { metrics.producerSuspended(bufferedElements: bufferedElements) }
                }
            }
        } onCancel: {
            self.producerCancelled(id: id, code: .cancelled)
        }
        if didSuspend, let start { metrics.producerResumed(waited: start.duration(to: .now)) }
        switch result {
        case .sent, .reserved:
            return
        case .failed(let element?, let code):
            throw SendError(element: element, error: Self.error(code))
        case .failed(nil, _):
            preconditionFailure("a send waiter always carries its element")
        }
    }

    @usableFromInline
    func producerCancelled(id: UInt64, code: BackpressureError.Code) {
        let effects = state.withLock { $0.producerCancelled(id: id, code: code) }
        if !effects.isEmpty { perform(effects) }
    }

    /// The timer of a timed send fired: fail the producer if it waits, or record that its deadline passed so that
    /// it does not start waiting (it may not have registered yet).
    @usableFromInline
    func producerTimedOut(id: UInt64, deadline: WaiterDeadline) {
        let effects = state.withLock { state in
            let effects = state.producerCancelled(id: id, code: .timedOut)
            if effects.producers.isEmpty { deadline.markPassed() }
            return effects
        }
        if !effects.isEmpty { perform(effects) }
    }

    // MARK: Permits

    /// Waits for room for one element (or `weight` of room) and returns a permit to send it later.
    ///
    /// The wait is the cancellable part; ``Permit/send(_:)`` then cannot fail. A permit dropped without sending
    /// gives its room back. Use it when building the element is costly or must not be lost.
    ///
    /// - Parameter weight: The room to reserve; 1 by default. ``Permit/send(_:)`` uses this weight, not the
    ///   element's.
    /// - Returns: The permit.
    /// - Throws: ``BackpressureError`` with ``BackpressureError/Code/cancelled``,
    ///   ``BackpressureError/Code/channelFinished``, ``BackpressureError/Code/channelCancelled``,
    ///   ``BackpressureError/Code/channelFull`` (policy ``OverflowPolicy/reject``) or
    ///   ``BackpressureError/Code/elementTooLarge``.
    @inlinable
    public func reserve(weight: Int = 1) async throws(BackpressureError) -> Permit {
        let weight = Swift.max(1, weight)
        let action = state.withLock { $0.reserve(weight: weight) }
        switch action {
        case .reserved:
            return Permit(channel: self, weight: weight)
        case .failed(let code):
            throw Self.error(code)
        case .mustSuspend, .suspended:
            break
        }
        let id = state.withLock { $0.makeID() }
        let start: ContinuousClock.Instant? = metrics.isEnabled ? .now : nil
        var didSuspend = false
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: ProducerContinuation) in
                let action: StateMachine.ReserveAction = state.withLock {
                    $0.reserveOrWait(weight: weight, id: id, token: continuation, isCancelled: Task.isCancelled)
                }
                switch action {
                case .reserved:
                    continuation.resume(returning: .reserved)
                case .failed(let code):
                    continuation.resume(returning: .failed(nil, code))
                case .suspended, .mustSuspend:
                    didSuspend = true
                    if start != nil { metrics.reservingProducerSuspended() }
                }
            }
        } onCancel: {
            self.producerCancelled(id: id, code: .cancelled)
        }
        if didSuspend, let start { metrics.producerResumed(waited: start.duration(to: .now)) }
        switch result {
        case .reserved, .sent:
            return Permit(channel: self, weight: weight)
        case .failed(_, let code):
            throw Self.error(code)
        }
    }

    /// Reserves room now if there is some, without waiting.
    ///
    /// - Parameter weight: The room to reserve; 1 by default.
    /// - Returns: The permit, or `nil` when there is no room now.
    /// - Throws: ``BackpressureError`` for a closed channel or an oversized weight.
    @inlinable
    public func tryReserve(weight: Int = 1) throws(BackpressureError) -> Permit? {
        let weight = Swift.max(1, weight)
        switch state.withLock({ $0.reserve(weight: weight) }) {
        case .reserved:
            return Permit(channel: self, weight: weight)
        case .failed(let code):
            throw Self.error(code)
        case .mustSuspend, .suspended:
            return nil
        }
    }

    @usableFromInline
    func permitSent(_ element: Element, weight: Int) {
        let effects = state.withLock { $0.permitSent(element, weight: weight) }
        if !effects.isEmpty { perform(effects) }
    }

    @usableFromInline
    func permitReleased(weight: Int) {
        let effects = state.withLock { $0.permitReleased(weight: weight) }
        if !effects.isEmpty { perform(effects) }
    }

    // MARK: Receiving

    /// Receives the next element, suspending while the channel is empty and open.
    ///
    /// - Returns: The element, or `nil` once the channel is finished and drained, or cancelled.
    /// - Throws: ``BackpressureError/Code/cancelled`` when the calling task is cancelled while it waits (an element
    ///   already handed to this consumer is returned instead, never lost).
    @inlinable
    nonisolated(nonsending) public func receive() async throws(BackpressureError) -> Element? {
        let action = state.withLock { $0.receive() }
        switch action {
        case .element(let element):
            return element
        case .elementAndProducer(let element, let producer, let result):
            producer.resume(returning: result)
            return element
        case .elementAndEffects(let element, let effects):
            perform(effects)
            return element
        case .end:
            return nil
        case .mustSuspend(let id):
            return try await receiveSuspending(id: id)
        }
    }

    /// Receives an element if one is buffered, without waiting.
    ///
    /// - Returns: The element, or `nil` when the buffer is empty (check ``statistics`` to tell an ended channel).
    @inlinable
    public func tryReceive() -> Element? {
        switch state.withLock({ $0.receive() }) {
        case .element(let element):
            return element
        case .elementAndProducer(let element, let producer, let result):
            producer.resume(returning: result)
            return element
        case .elementAndEffects(let element, let effects):
            perform(effects)
            return element
        case .end, .mustSuspend:
            return nil
        }
    }

    @inlinable @inline(never)
    nonisolated(nonsending) func receiveSuspending(id: UInt64) async throws(BackpressureError) -> Element? {
        var didSuspend = false
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: ConsumerContinuation) in
                let action: StateMachine.ReceiveOrWaitAction = state.withLock {
                    $0.receiveOrWait(id: id, token: continuation, isCancelled: Task.isCancelled)
                }
                switch action {
                case .element(let element):
                    continuation.resume(returning: .element(element))
                case .elementAndProducer(let element, let producer, let result):
                    producer.resume(returning: result)
                    continuation.resume(returning: .element(element))
                case .elementAndEffects(let element, let effects):
                    perform(effects)
                    continuation.resume(returning: .element(element))
                case .end:
                    continuation.resume(returning: .end)
                case .failed(let code):
                    continuation.resume(returning: .failed(code))
                case .suspended:
                    didSuspend = true
                    if metrics.isEnabled { metrics.consumerSuspended() }
                }
            }
        } onCancel: {
            let effects = self.state.withLock { $0.consumerCancelled(id: id) }
            if !effects.isEmpty { self.perform(effects) }
        }
        if didSuspend, metrics.isEnabled { metrics.consumerResumed() }
        switch result {
        case .element(let element):
            return element
        case .end:
            return nil
        case .failed(let code):
            throw Self.error(code)
        }
    }

    // MARK: Termination

    /// Ends the channel for producers; consumers drain what is buffered and then get `nil`.
    ///
    /// Producers waiting for room are resumed with ``BackpressureError/Code/channelFinished`` and their elements;
    /// later sends fail the same way. Outstanding permits can still send. Calling it again does nothing.
    public func finish() {
        let effects = state.withLock { $0.finish() }
        perform(effects)
        logger?.debug(
            "Channel finished",
            metadata: [LogKey.channel: "\(label)", LogKey.waiters: "\(effects.producers.count)"]
        )
    }

    /// Ends both sides at once.
    ///
    /// Buffered elements go to the drop callback with ``DropReason/channelCancelled``; waiting producers get their
    /// elements back with ``BackpressureError/Code/channelCancelled``; waiting and later consumers get `nil`.
    public func cancel() {
        let effects = state.withLock { $0.cancel() }
        perform(effects)
        logger?.debug(
            "Channel cancelled",
            metadata: [
                LogKey.channel: "\(label)", LogKey.dropped: "\(effects.dropped.count)",
                LogKey.waiters: "\(effects.producers.count)",
            ]
        )
    }

    /// A snapshot of the channel's state.
    public var statistics: Statistics {
        state.withLock { state in
            Statistics(
                bufferedElements: state.bufferedCount,
                level: state.level,
                waitingProducers: state.producers.count,
                waitingConsumers: state.consumers.count,
                isClosed: state.lifecycle != .open
            )
        }
    }

    // MARK: Effects

    /// Performs what the state machine decided, outside the lock.
    @inlinable
    func perform(_ effects: StateMachine.Effects) {
        effects.consumers.visit { consumer, result in consumer.resume(returning: result) }
        effects.producers.visit { producer, result in producer.resume(returning: result) }
        if !effects.dropped.isEmpty {
            effects.dropped.visit { element, reason in
                metrics.dropped(reason)
                onDrop?(element, reason)
            }
        }
    }

    @usableFromInline
    static func error(_ code: BackpressureError.Code) -> BackpressureError {
        switch code {
        case .cancelled:
            BackpressureError(code, message: "The task was cancelled while it waited on the channel.")
        case .timedOut:
            BackpressureError(code, message: "The channel stayed full for longer than the timeout.")
        case .channelFull:
            BackpressureError(code, message: "The channel is full; retry later or use a suspending send.")
        case .channelFinished:
            BackpressureError(code, message: "The channel was finished and accepts no more elements.")
        case .channelCancelled:
            BackpressureError(code, message: "The channel was cancelled.")
        case .elementTooLarge:
            BackpressureError(code, message: "The element weighs more than the channel's capacity and can never fit.")
        default:
            BackpressureError(code, message: "The channel operation failed.")
        }
    }
}

extension BoundedChannel: AsyncSequence {
    public typealias Failure = BackpressureError

    /// Iterates the channel: each call to `next()` is a ``BoundedChannel/receive()``.
    ///
    /// Several iterators (in several tasks) may consume the same channel; each element goes to one of them.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let channel: BoundedChannel

        @inlinable
        init(channel: BoundedChannel) { self.channel = channel }

        /// The next element, or `nil` once the channel ended.
        ///
        /// - Returns: The element or `nil`.
        /// - Throws: ``BackpressureError/Code/cancelled`` when the task is cancelled while waiting.
        @inlinable
        public mutating func next() async throws(BackpressureError) -> Element? {
            try await channel.receive()
        }

        /// The next element, or `nil` once the channel ended.
        ///
        /// - Parameter actor: The caller's isolation (unused: the channel synchronises with its own lock).
        /// - Returns: The element or `nil`.
        /// - Throws: ``BackpressureError/Code/cancelled`` when the task is cancelled while waiting.
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(BackpressureError) -> Element? {
            try await channel.receive()
        }
    }

    /// Makes an iterator over the channel.
    ///
    /// - Returns: The iterator.
    @inlinable
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}
