import CoreMetrics
import DequeModule
import Logging

/// The error every ``ResourcePool`` operation throws (apart from `CancellationError` when the waiting task is
/// cancelled).
///
/// Compare errors by ``code``: two errors are equal when their codes are. ``underlying`` carries the cause when
/// there is one (for ``Code/circuitBreakerOpen`` the last creation error). The message says what went wrong and what
/// to do about it and never contains a secret; the pool's figures at the time are included where they help tell a
/// leak from an undersized pool.
public struct ResourcePoolError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidConfiguration
            case timeout
            case tooManyWaiters
            case circuitBreakerOpen
            case shutDown
            case alreadyRunning
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// A configuration field is invalid; ``ResourcePoolError/field`` names it.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// No resource became available before the acquire timeout.
        public static let timeout = Code(.timeout)
        /// The waiter queue is full (``ResourcePoolConfiguration/maximumWaiters``): the request was shed at once.
        public static let tooManyWaiters = Code(.tooManyWaiters)
        /// Creating resources keeps failing and none is open; ``ResourcePoolError/underlying`` is the last error.
        public static let circuitBreakerOpen = Code(.circuitBreakerOpen)
        /// The pool is shutting down or shut down.
        public static let shutDown = Code(.shutDown)
        /// `run()` was called on a pool that already ran.
        public static let alreadyRunning = Code(.alreadyRunning)

        public var description: String { self.base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence for people: what went wrong and what to do about it.
    public var message: String
    /// For ``Code/invalidConfiguration``: the name of the offending field.
    public var field: String?
    /// The cause, when there is one.
    public var underlying: (any Error)?
    /// Where the error was thrown (inside the pool).
    public var file: String
    /// Where the error was thrown (inside the pool).
    public var line: Int

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: what kind of failure this is.
    ///   - message: what went wrong and what to do about it.
    ///   - field: the offending configuration field, if any.
    ///   - underlying: the cause, if any.
    ///   - file: the throwing site's file; defaults to the caller's.
    ///   - line: the throwing site's line; defaults to the caller's.
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

    /// Errors are equal when their codes are.
    public static func == (lhs: ResourcePoolError, rhs: ResourcePoolError) -> Bool {
        lhs.code == rhs.code
    }

    /// The code, the message, the field and the underlying error's `description`, for people and logs.
    ///
    /// The underlying error appears through its `description`, which for the library's own errors never holds a
    /// secret or a value (a `PostgresError` leaves out the server's DETAIL).
    public var description: String {
        self.render(underlying: { String(describing: $0) })
    }

    /// As ``description``, with the underlying error's `debugDescription` (for a `PostgresError`, the server's
    /// DETAIL with its row values): for a developer's console, not for production logs.
    public var debugDescription: String {
        self.render(underlying: { String(reflecting: $0) })
    }

    /// The code, the message, the field and the underlying error as `underlying` renders it.
    private func render(underlying render: (any Error) -> String) -> String {
        var text = "ResourcePoolError.\(self.code): \(self.message)"
        if let field = self.field { text += " (field: \(field))" }
        if let underlying = self.underlying { text += " (underlying: \(render(underlying)))" }
        return text
    }
}
