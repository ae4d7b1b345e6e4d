/// What a ``BoundedChannel`` does with a send that finds no room.
///
/// Chosen once, at creation. A struct with static factories rather than a public enum, so new policies never break
/// a `switch` in your code.
public struct OverflowPolicy: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Base: UInt8, Sendable {
        case suspend
        case reject
        case dropOldest
        case dropNewest
    }

    @usableFromInline
    let base: Base

    @inlinable
    init(_ base: Base) { self.base = base }

    /// The default: `send` suspends until there is room; `trySend` throws ``BackpressureError/Code/channelFull``.
    ///
    /// With a low watermark (``BoundedChannel/Configuration/lowWatermark``) suspended producers resume only once the
    /// buffered weight has drained to that mark.
    public static let suspend = OverflowPolicy(.suspend)
    /// `send` never waits: when full it throws ``BackpressureError/Code/channelFull`` with the element handed back.
    public static let reject = OverflowPolicy(.reject)
    /// When full, the oldest buffered elements are discarded to make room; each goes to the drop callback.
    public static let dropOldest = OverflowPolicy(.dropOldest)
    /// When full, the element being sent is discarded (the buffer keeps the oldest) and goes to the drop callback.
    public static let dropNewest = OverflowPolicy(.dropNewest)

    public var description: String {
        switch base {
        case .suspend: "suspend"
        case .reject: "reject"
        case .dropOldest: "dropOldest"
        case .dropNewest: "dropNewest"
        }
    }
}

/// Why a ``BoundedChannel`` passed an element to its drop callback.
public struct DropReason: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Base: UInt8, Sendable {
        case droppedOldest
        case droppedNewest
        case channelCancelled
    }

    @usableFromInline
    let base: Base

    @inlinable
    init(_ base: Base) { self.base = base }

    /// The ``OverflowPolicy/dropOldest`` policy evicted this buffered element to make room.
    public static let droppedOldest = DropReason(.droppedOldest)
    /// The ``OverflowPolicy/dropNewest`` policy discarded this element instead of buffering it.
    public static let droppedNewest = DropReason(.droppedNewest)
    /// The element was still buffered (or sent through a permit) when the channel was cancelled.
    public static let channelCancelled = DropReason(.channelCancelled)

    public var description: String {
        switch base {
        case .droppedOldest: "dropped_oldest"
        case .droppedNewest: "dropped_newest"
        case .channelCancelled: "channel_cancelled"
        }
    }
}
