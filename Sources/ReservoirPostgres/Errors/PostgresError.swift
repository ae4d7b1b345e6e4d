/// The one error type of the PostgreSQL driver.
///
/// A `PostgresError` says what went wrong in ``message`` and classifies it with a ``code``. Errors reported by the
/// server also carry the server's fields: ``sqlState``, ``severity``, ``detail``, ``hint``, ``position`` and the text
/// of the failing ``statement``. The statement text never includes bound parameter values, and no field ever holds a
/// connection string or a password.
///
/// ``description`` (what `"\(error)"`, `localizedDescription` and the library's own log lines show) holds only what
/// is safe to log: the code, the message, the SQLSTATE, the names of the constraint, table and column, the hint, and
/// the statement when its text holds no literal value. It never holds ``detail``, which for constraint violations
/// holds row values (`Key (email)=(alice@example.com) already exists.`), nor the quoted values the server puts in the
/// message of a data exception (SQLSTATE class 22: `invalid input syntax for type integer: "…"`). Read those from
/// their properties, or print `String(reflecting: error)` (``debugDescription``) where values may be shown.
///
/// Two errors are equal when their codes are equal, so `catch let error as PostgresError where error.code == .server`
/// reads naturally. Compare ``sqlState`` for the exact server condition.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible, Equatable {
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
        /// Indicates that a configuration value is invalid; ``PostgresError/field`` names it.
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
    ///
    /// As the server sent it: the message of a data exception (SQLSTATE class 22) quotes the input value that failed
    /// (`invalid input syntax for type integer: "…"`). Log ``description``, which replaces that value, rather than
    /// this.
    public var message: String
    /// The SQLSTATE the server reported; `nil` for failures detected by libpq or the driver.
    public var sqlState: SQLState?
    /// The server's severity (`ERROR`, `FATAL`, `PANIC`), not localised.
    public var severity: String?
    /// The server's detail line, if any.
    ///
    /// It can hold row values (`Key (email)=(alice@example.com) already exists.`, `Failing row contains (…)`), so
    /// ``description`` leaves it out; ``debugDescription`` includes it.
    public var detail: String?
    /// The server's hint, if any.
    public var hint: String?
    /// 1-based character position of the error in ``statement``, if the server reported one.
    public var position: Int?
    /// The text of the failing statement, without parameter values.
    ///
    /// Raw SQL (``PostgresQuery/init(unsafeSQL:bindings:)``, scripts) can hold literal values; ``description`` shows
    /// the statement only when it holds none, ``debugDescription`` always.
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
    /// For ``Code/invalidConfiguration``: the name of the offending field, such as `"connectTimeout"` or
    /// `"pool.maximumSize"`, when one field is at fault.
    public var field: String?
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
    ///   - message: One sentence saying what went wrong, without secrets or values.
    ///   - field: For ``Code/invalidConfiguration``: the offending field, if one is.
    ///   - underlying: The cause, if any.
    ///   - file: The throwing site's file.
    ///   - line: The throwing site's line.
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
    ///   - code: The kind of failure.
    ///   - message: One sentence saying what went wrong, without secrets or values.
    ///   - underlying: The cause, if any.
    ///   - file: The throwing site's file.
    ///   - line: The throwing site's line.
    @available(*, deprecated, renamed: "init(_:message:field:underlying:file:line:)")
    public init(
        code: Code,
        message: String,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.init(code, message: message, underlying: underlying, file: file, line: line)
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: PostgresError, rhs: PostgresError) -> Bool {
        lhs.code == rhs.code
    }

    /// What went wrong, safe to log: the code, the message (with the quoted values of a data exception replaced by
    /// `"…"`), the SQLSTATE, the hint, the field, the constraint, table and column named by the server, the position
    /// and the statement when its text holds no literal. Never ``detail``, a parameter or row value, or a secret.
    ///
    /// `PostgresError.server: duplicate key value violates unique constraint "users_email_key" (SQLSTATE 23505;
    /// constraint users_email_key; table users)`
    public var description: String {
        render(withValues: false)
    }

    /// Everything ``description`` says plus ``detail``, the statement whatever it holds, the message as the server
    /// sent it, and the underlying error's debug description. It may contain row values: print it where values may
    /// be shown (a developer's console), not in production logs.
    public var debugDescription: String {
        render(withValues: true)
    }

    /// The text of ``description`` (`withValues` false) or ``debugDescription`` (true): the message, the
    /// parenthesised facts separated by "; ", then each longer part as a sentence of its own (". Hint: …").
    private func render(withValues: Bool) -> String {
        var text = "PostgresError.\(code): "
        text += withValues ? message : Self.redactingQuotedValues(in: message, sqlState: sqlState)
        var facts: [String] = []
        if let sqlState { facts.append("SQLSTATE \(sqlState.rawValue)") }
        if let field { facts.append("field \(field)") }
        if let constraintName { facts.append("constraint \(constraintName)") }
        if let tableName { facts.append("table \(tableName)") }
        // A decoding error's message already names its column and type.
        if let columnName, code != .decodingFailed { facts.append("column \(columnName)") }
        if let position { facts.append("position \(position)") }
        if !facts.isEmpty { text += " (" + facts.joined(separator: "; ") + ")" }
        func appendSentence(_ label: String, _ value: String) {
            text += (text.hasSuffix(".") ? " " : ". ") + label + ": " + value
        }
        if withValues, let detail { appendSentence("Detail", detail) }
        if let hint { appendSentence("Hint", hint) }
        if let statement, withValues || StatementTracing.holdsNoLiterals(statement) {
            appendSentence("Statement", statement)
        }
        if withValues, let underlying { appendSentence("Underlying", String(reflecting: underlying)) }
        return text
    }

    /// The message with every double-quoted part replaced by `"…"` when the SQLSTATE is a data exception (class 22),
    /// whose messages quote the offending input value: `invalid input syntax for type integer: "…"`,
    /// `value "…" is out of range for type integer`. Other messages quote names (of relations, columns,
    /// constraints), which stay.
    static func redactingQuotedValues(in message: String, sqlState: SQLState?) -> String {
        guard sqlState?.errorClass == "22", message.contains("\"") else { return message }
        var result = ""
        var inside = false
        for character in message {
            if character == "\"" {
                result.append(inside ? "…\"" : "\"")
                inside.toggle()
            } else if !inside {
                result.append(character)
            }
        }
        if inside { result.append("…") }
        return result
    }
}
