/// The error thrown by ``PostgresTestServer``.
///
/// Every error says what went wrong and what to do about it in ``message``. When the server itself failed (initdb,
/// start-up, shutdown), ``logTail`` holds the last lines of the server's log, which usually name the cause. Neither
/// ever contains a password. Two errors are equal when their codes are equal.
public struct PostgresTestServerError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case binariesNotFound
            case serverUserNotFound
            case invalidConfiguration
            case fileSystem
            case initializationFailed
            case startFailed
            case startTimedOut
            case stopTimedOut
            case invalidState
            case toolNotFound
            case toolFailed
            case sqlFailed
            case migrationFailed
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// Indicates that `initdb` and `postgres` were not found in any searched directory.
        ///
        /// Install the server: `apt-get install postgresql` on Debian and Ubuntu.
        public static let binariesNotFound = Code(.binariesNotFound)
        /// Indicates that the process runs as root and the unprivileged user to run the server as does not exist.
        public static let serverUserNotFound = Code(.serverUserNotFound)
        /// Indicates that a configuration field holds a value that cannot work; ``PostgresTestServerError/field``
        /// names it.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// Indicates that the temporary folder could not be created, handed over or written.
        public static let fileSystem = Code(.fileSystem)
        /// Indicates that `initdb`, or creating the configured roles and database, failed.
        public static let initializationFailed = Code(.initializationFailed)
        /// Indicates that the postmaster exited during start-up; ``PostgresTestServerError/logTail`` says why.
        public static let startFailed = Code(.startFailed)
        /// Indicates that the server did not accept connections within the start-up timeout.
        public static let startTimedOut = Code(.startTimedOut)
        /// Indicates that the server did not exit within the shutdown timeout and was killed.
        public static let stopTimedOut = Code(.stopTimedOut)
        /// Indicates a call that does not fit the server's state, such as `start()` while it runs.
        public static let invalidState = Code(.invalidState)
        /// Indicates that a client tool (`psql`, `pgbench`, …) was not found.
        public static let toolNotFound = Code(.toolNotFound)
        /// Indicates that a client tool exited with a non-zero status.
        public static let toolFailed = Code(.toolFailed)
        /// Indicates that a statement the server ran to create, clone or drop a test database failed, or that the
        /// server's Unix socket could not be reached for it; the message has the server's error.
        public static let sqlFailed = Code(.sqlFailed)
        /// Indicates that a migration failed while a template database was built; the message names the step and
        /// ``PostgresTestServerError/logTail`` holds the tool's or the server's error.
        public static let migrationFailed = Code(.migrationFailed)

        /// The code's name, such as `binariesNotFound`.
        public var description: String {
            switch base {
            case .binariesNotFound: "binariesNotFound"
            case .serverUserNotFound: "serverUserNotFound"
            case .invalidConfiguration: "invalidConfiguration"
            case .fileSystem: "fileSystem"
            case .initializationFailed: "initializationFailed"
            case .startFailed: "startFailed"
            case .startTimedOut: "startTimedOut"
            case .stopTimedOut: "stopTimedOut"
            case .invalidState: "invalidState"
            case .toolNotFound: "toolNotFound"
            case .toolFailed: "toolFailed"
            case .sqlFailed: "sqlFailed"
            case .migrationFailed: "migrationFailed"
            }
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// One or two sentences: what went wrong and what to do about it.
    public var message: String
    /// For ``Code/invalidConfiguration``: the name of the offending field, such as `"port"`, when one is at fault.
    public var field: String?
    /// The last lines of the server's log (or of a failed tool's error output), when they help explain the failure.
    public var logTail: String?
    /// The error that caused this one, if any.
    public var underlying: (any Error)?
    /// The source file of the call that failed.
    public var file: String
    /// The source line of the call that failed.
    public var line: Int

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: What went wrong and what to do about it, without secrets.
    ///   - field: For ``Code/invalidConfiguration``: the offending field, if one is.
    ///   - logTail: The relevant end of the server's log or a tool's error output.
    ///   - underlying: The error that caused this one.
    ///   - file: The throwing site's file.
    ///   - line: The throwing site's line.
    public init(
        _ code: Code,
        message: String,
        field: String? = nil,
        logTail: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.field = field
        self.logTail = logTail
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: What went wrong and what to do about it, without secrets.
    ///   - logTail: The relevant end of the server's log or a tool's error output.
    ///   - underlying: The error that caused this one.
    ///   - file: The throwing site's file.
    ///   - line: The throwing site's line.
    @available(*, deprecated, renamed: "init(_:message:field:logTail:underlying:file:line:)")
    public init(
        _ code: Code,
        _ message: String,
        logTail: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.init(code, message: message, logTail: logTail, underlying: underlying, file: file, line: line)
    }

    /// The code, the message, the field, the underlying error and the log's tail; never a password.
    public var description: String {
        var text = "PostgresTestServerError.\(code): \(message)"
        if let field { text += " (field: \(field))" }
        if let underlying { text += " (underlying: \(underlying))" }
        if let logTail, !logTail.isEmpty {
            text += "\n--- last lines of the log ---\n\(logTail)"
        }
        return text
    }

    /// Two values are equal when their codes are equal.
    public static func == (lhs: PostgresTestServerError, rhs: PostgresTestServerError) -> Bool {
        lhs.code == rhs.code
    }
}
