import CoreMetrics
import Logging

extension BoundedChannel {
    /// The settings of a ``BoundedChannel``, validated when the channel is created.
    ///
    /// ```swift
    /// var configuration = BoundedChannel<Int>.Configuration(capacity: 64)
    /// configuration.overflowPolicy = .dropOldest
    /// configuration.onDrop = { element, reason in print("dropped \(element): \(reason)") }
    /// let channel = try BoundedChannel(configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// The most weight the channel holds: buffered elements plus outstanding permits. At least 1.
        ///
        /// Without a ``weight`` function every element weighs 1, so this is the number of buffered elements.
        public var capacity: Int
        /// What a send does when there is no room. Default ``OverflowPolicy/suspend``.
        public var overflowPolicy: OverflowPolicy
        /// With ``OverflowPolicy/suspend``: once the channel was full, suspended producers resume only when the
        /// buffered weight has drained to this mark (hysteresis, fewer wake-ups). `nil` (the default) resumes a
        /// producer as soon as its element fits. Must be in `0..<capacity`.
        public var lowWatermark: Int?
        /// The weight of an element against the capacity (for example its size in bytes). `nil` means every element
        /// weighs 1. Called once per send, on the sending task, outside the channel's lock; a result below 1 counts
        /// as 1. An element heavier than the capacity is refused with ``BackpressureError/Code/elementTooLarge``.
        public var weight: (@Sendable (Element) -> Int)?
        /// Receives every element the channel discards: those a drop policy evicts and those still buffered when the
        /// channel is cancelled or released. Called synchronously, outside the lock, on the task that caused the
        /// drop; each element at most once. Elements handed back to a producer in an error do not come here.
        public var onDrop: (@Sendable (Element, DropReason) -> Void)?
        /// The `channel` dimension of the channel's metrics.
        public var label: String
        /// Where the metrics go; `nil` (the default) uses the process-wide `MetricsSystem.factory`.
        public var metricsFactory: (any MetricsFactory)?
        /// Where the channel logs `finish()` and `cancel()` (debug, with the number of elements dropped); `nil` (the
        /// default) logs nothing. The hot paths never log.
        public var logger: Logger?

        /// Settings with the given capacity and defaults for everything else.
        ///
        /// - Parameter capacity: The most weight the channel holds; validated by the channel's initialiser.
        public init(capacity: Int) {
            self.capacity = capacity
            self.overflowPolicy = .suspend
            self.lowWatermark = nil
            self.weight = nil
            self.onDrop = nil
            self.label = "channel"
            self.metricsFactory = nil
            self.logger = nil
        }

        /// Settings for a suspending channel with high/low watermarks.
        ///
        /// Producers suspend when the buffered weight would exceed `high` and resume once it has drained to `low`.
        ///
        /// - Parameters:
        ///   - low: The mark at or below which producers resume; `0 <= low < high`.
        ///   - high: The capacity.
        /// - Returns: The settings; validated by the channel's initialiser.
        public static func watermark(low: Int, high: Int) -> Configuration {
            var configuration = Configuration(capacity: high)
            configuration.lowWatermark = low
            return configuration
        }

        func validate() throws(BackpressureError) {
            guard capacity >= 1 else {
                throw .invalid("capacity", "The channel's capacity must be at least 1, got \(capacity).")
            }
            if let lowWatermark {
                guard lowWatermark >= 0, lowWatermark < capacity else {
                    throw .invalid(
                        "lowWatermark",
                        "The low watermark must be at least 0 and below the capacity (\(capacity)), got \(lowWatermark)."
                    )
                }
                guard overflowPolicy == .suspend else {
                    throw .invalid(
                        "lowWatermark",
                        "A low watermark only applies to the suspend policy, not to \(overflowPolicy)."
                    )
                }
            }
        }
    }
}
