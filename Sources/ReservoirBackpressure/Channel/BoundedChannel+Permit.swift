extension BoundedChannel {
    /// Room reserved in a ``BoundedChannel`` by ``BoundedChannel/reserve(weight:)``.
    ///
    /// Sending through a permit cannot fail: the element goes to a consumer or the buffer (or, if the channel was
    /// cancelled meanwhile, to the drop callback). A permit that is dropped without sending gives its room back.
    /// A permit is `~Copyable`, so it is used at most once.
    public struct Permit: ~Copyable, @unchecked Sendable {
        // Unchecked: the only stored reference is an `Unmanaged` to the channel, which is `Sendable`; the permit
        // owns one retain of it, given up exactly once, by `send(_:)` or by `deinit`.
        @usableFromInline let channel: Unmanaged<BoundedChannel<Element>>
        /// The room this permit holds.
        public let weight: Int

        @inlinable
        init(channel: BoundedChannel<Element>, weight: Int) {
            self.channel = Unmanaged.passRetained(channel)
            self.weight = weight
        }

        /// Sends the element into the reserved room. Cannot fail.
        ///
        /// - Parameter element: The element; it counts with the permit's ``weight``, whatever its own weight.
        public consuming func send(_ element: Element) {
            let channel = self.channel.takeRetainedValue()
            let weight = self.weight
            discard self
            channel.permitSent(element, weight: weight)
        }

        deinit {
            channel.takeRetainedValue().permitReleased(weight: weight)
        }
    }
}
