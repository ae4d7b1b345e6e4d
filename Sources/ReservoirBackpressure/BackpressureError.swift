/// The one error type of the `ReservoirBackpressure` module.
///
/// Every failure carries a ``Code`` that says what went wrong, an optional underlying error, the name of the field
/// at fault for configuration errors, and the place that threw it (``file`` and ``line``, kept out of the text).
/// Two errors are equal when their codes are equal, so
/// `catch let error as BackpressureError where error.code == .channelFull` reads naturally.
///
/// Channel sends that fail wrap this error in ``BoundedChannel/SendError``, which also hands the element back.
public struct BackpressureError: Error, Hashable, CustomStringConvertible, Sendable {
    /// What went wrong: a closed set of static constants, so new codes never break a `switch` over them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        @usableFromInline
        enum Base: UInt8, Sendable {
            case invalidConfiguration
            case invalidArgument
            case channelFull
            case channelFinished
            case channelCancelled
            case elementTooLarge
            case cancelled
            case timedOut
            case deadlineExceeded
            case permitsExceedCapacity
            case queueFull
            case limiterShutDown
            case shed
        }

        @usableFromInline
        let base: Base

        @inlinable
        init(_ base: Base) { self.base = base }

        /// A setting is out of range; ``BackpressureError/field`` names it. Thrown by initialisers.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// An argument of a call is out of range (permits below 1); ``BackpressureError/field`` names it. Nothing was
        /// taken or changed.
        public static let invalidArgument = Code(.invalidArgument)
        /// The channel had no room and its policy is to reject (or a `trySend` found it full).
        public static let channelFull = Code(.channelFull)
        /// The channel was finished: it accepts no more elements, consumers drain what is buffered.
        public static let channelFinished = Code(.channelFinished)
        /// The channel was cancelled: both sides ended at once.
        public static let channelCancelled = Code(.channelCancelled)
        /// The element's weight is larger than the channel's capacity, so it could never fit.
        public static let elementTooLarge = Code(.elementTooLarge)
        /// The calling task was cancelled while it waited.
        public static let cancelled = Code(.cancelled)
        /// The wait took longer than the timeout the caller gave.
        public static let timedOut = Code(.timedOut)
        /// The wait would end after the caller's deadline, so the call failed at once without waiting.
        public static let deadlineExceeded = Code(.deadlineExceeded)
        /// More permits were asked for than the limiter can ever grant at once (its burst or limit).
        public static let permitsExceedCapacity = Code(.permitsExceedCapacity)
        /// The limiter's wait queue was full, so the call was rejected at once.
        public static let queueFull = Code(.queueFull)
        /// The limiter was shut down; it grants nothing more.
        public static let limiterShutDown = Code(.limiterShutDown)
        /// Load shedding rejected the call: the predicted queueing time exceeded the caller's deadline.
        public static let shed = Code(.shed)

        public var description: String {
            switch base {
            case .invalidConfiguration: "invalidConfiguration"
            case .invalidArgument: "invalidArgument"
            case .channelFull: "channelFull"
            case .channelFinished: "channelFinished"
            case .channelCancelled: "channelCancelled"
            case .elementTooLarge: "elementTooLarge"
            case .cancelled: "cancelled"
            case .timedOut: "timedOut"
            case .deadlineExceeded: "deadlineExceeded"
            case .permitsExceedCapacity: "permitsExceedCapacity"
            case .queueFull: "queueFull"
            case .limiterShutDown: "limiterShutDown"
            case .shed: "shed"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// For ``Code/invalidConfiguration``: the name of the setting at fault, e.g. `"capacity"`.
    public var field: String?
    /// A sentence for people: what happened and what to do about it.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error)?
    /// The file that threw the error.
    public var file: String
    /// The line that threw the error.
    public var line: Int

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: A sentence for people.
    ///   - field: The setting or argument at fault, for ``Code/invalidConfiguration`` and ``Code/invalidArgument``.
    ///   - underlying: The cause, if any.
    ///   - file: The throwing file; defaults to the caller's.
    ///   - line: The throwing line; defaults to the caller's.
    @inlinable
    public init(
        _ code: Code,
        message: String,
        field: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.field = field
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: A sentence for people.
    ///   - field: The setting at fault, for configuration errors.
    ///   - underlying: The cause, if any.
    ///   - file: The throwing file; defaults to the caller's.
    ///   - line: The throwing line; defaults to the caller's.
    @available(*, deprecated, renamed: "init(_:message:field:underlying:file:line:)")
    @inlinable
    public init(
        _ code: Code,
        _ message: String,
        field: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.init(code, message: message, field: field, underlying: underlying, file: file, line: line)
    }

    /// Makes an ``Code/invalidConfiguration`` error naming `field`.
    @inlinable
    static func invalid(_ field: String, _ message: String, file: String = #fileID, line: Int = #line) -> Self {
        BackpressureError(.invalidConfiguration, message: message, field: field, file: file, line: line)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The code, the message, the field and the underlying error's description, for people and logs. Where it was
    /// thrown is in ``file`` and ``line``, not in the text: a source path says nothing to the person reading it.
    public var description: String {
        var text = "BackpressureError.\(code): \(message)"
        if let field { text += " (field: \(field))" }
        if let underlying { text += " (underlying: \(underlying))" }
        return text
    }
}
