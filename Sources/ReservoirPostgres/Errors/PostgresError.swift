/// The one error type of the PostgreSQL driver.
///
/// A `PostgresError` says what went wrong in ``message`` and classifies it with a ``code``. Errors reported by the
/// server also carry the server's fields: ``sqlState``, ``severity``, ``detail``, ``hint``, ``position`` and the text
/// of the failing ``statement``. The statement text never includes bound parameter values, and no field ever holds a
/// connection string or a password.
///
/// Two errors are equal when their codes are equal, so `catch let error as PostgresError where error == .server`
/// reads naturally. Compare ``sqlState`` for the exact server condition.
public struct PostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case server
            case connectionFailed
            case connectionRejected
            case connectionClosed
            case invalidConfiguration
            case connectTimeout
            case statementTimeout
            case decodingFailed
            case encodingFailed
            case invalidArgument
            case unsupported
            case commitOutcomeUnknown
            case rateLimited
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Indicates that the server rejected a statement; ``PostgresError/sqlState`` says why.
        public static let server = Code(.server)
        /// Indicates that a connection could not be opened (refused, authentication failed, unknown host …).
        public static let connectionFailed = Code(.connectionFailed)
        /// Indicates that the server refused the connection for a reason retrying will not fix: a wrong password
        /// (SQLSTATE 28P01), an unknown role or one that may not connect (28000), a missing database (3D000).
        /// ``PostgresError/sqlState`` says which. A pool's circuit breaker opens at the first one.
        public static let connectionRejected = Code(.connectionRejected)
        /// Indicates that an open connection broke or was closed; the connection cannot be used any more.
        public static let connectionClosed = Code(.connectionClosed)
        /// Indicates that a configuration value is invalid; the message names the field.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// Indicates that opening a connection took longer than the configured connect timeout.
        public static let connectTimeout = Code(.connectTimeout)
        /// Indicates that the server stopped a statement because it ran longer than its `statement_timeout`
        /// (SQLSTATE 57014 without a cancel request from this task). The connection stays usable.
        public static let statementTimeout = Code(.statementTimeout)
        /// Indicates that a column could not be decoded into the requested Swift type.
        public static let decodingFailed = Code(.decodingFailed)
        /// Indicates that a bound value could not be encoded.
        public static let encodingFailed = Code(.encodingFailed)
        /// Indicates that an argument passed to the driver is invalid (for example a channel name with a NUL byte).
        public static let invalidArgument = Code(.invalidArgument)
        /// Indicates that the server sent something the driver cannot handle (for example a text-format column).
        public static let unsupported = Code(.unsupported)
        /// Indicates that `COMMIT` was sent but its answer never arrived (the connection broke, or the task was
        /// cancelled and the answer did not come within the cancellation grace period): the transaction may or may
        /// not have been committed. The connection is closed. Check the data before retrying a non-idempotent
        /// transaction.
        public static let commitOutcomeUnknown = Code(.commitOutcomeUnknown)
        /// Indicates that a ``PostgresRateLimiter`` could not grant the permits before the caller's deadline; nothing
        /// was taken.
        public static let rateLimited = Code(.rateLimited)

        public var description: String {
            switch base {
            case .server: "server"
            case .connectionFailed: "connectionFailed"
            case .connectionRejected: "connectionRejected"
            case .connectionClosed: "connectionClosed"
            case .invalidConfiguration: "invalidConfiguration"
            case .connectTimeout: "connectTimeout"
            case .statementTimeout: "statementTimeout"
            case .decodingFailed: "decodingFailed"
            case .encodingFailed: "encodingFailed"
            case .invalidArgument: "invalidArgument"
            case .unsupported: "unsupported"
            case .commitOutcomeUnknown: "commitOutcomeUnknown"
            case .rateLimited: "rateLimited"
            }
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A one-sentence description: the server's primary message, or the driver's own.
    public var message: String
    /// The SQLSTATE the server reported; `nil` for failures detected by libpq or the driver.
    public var sqlState: SQLState?
    /// The server's severity (`ERROR`, `FATAL`, `PANIC`), not localised.
    public var severity: String?
    /// The server's detail line, if any.
    public var detail: String?
    /// The server's hint, if any.
    public var hint: String?
    /// 1-based character position of the error in ``statement``, if the server reported one.
    public var position: Int?
    /// The text of the failing statement, without parameter values.
    public var statement: String?
    /// Schema, table, column, data type and constraint named by the server, when it names them.
    public var schemaName: String?
    /// The table the error is about, if the server named one.
    public var tableName: String?
    /// The column the error is about (for server errors) or the column being decoded (for decoding errors).
    public var columnName: String?
    /// The data type the error is about, if the server named one.
    public var dataTypeName: String?
    /// The constraint that was violated, if the server named one.
    public var constraintName: String?
    /// The error that caused this one, if any.
    public var underlying: (any Error)?
    /// The file of the driver call that threw.
    public var file: String
    /// The line of the driver call that threw.
    public var line: Int

    /// Creates an error; the driver creates these, users rarely need to.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: One sentence saying what went wrong, without secrets.
    ///   - underlying: The cause, if any.
    ///   - file: The throwing site's file.
    ///   - line: The throwing site's line.
    public init(
        code: Code,
        message: String,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public static func == (lhs: PostgresError, rhs: PostgresError) -> Bool {
        lhs.code == rhs.code
    }

    public var description: String {
        var text = "PostgresError.\(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState.rawValue))" }
        if let detail { text += " Detail: \(detail)" }
        if let hint { text += " Hint: \(hint)" }
        if let columnName, code == .decodingFailed { text += " Column: \(columnName)" }
        if let position { text += " Position: \(position)" }
        if let statement { text += " Statement: \(statement)" }
        return text
    }
}
