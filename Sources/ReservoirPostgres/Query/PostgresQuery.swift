/// A SQL statement and its bound parameters.
///
/// Build one with string interpolation: every interpolated value becomes a parameter (`$1`, `$2`, …) sent
/// separately from the SQL text, so a value can never change the statement. That makes SQL injection through
/// this API impossible:
///
/// ```swift
/// let rows = try await connection.query("SELECT name FROM users WHERE id = \(id) AND team = \(team)")
/// // sends "SELECT name FROM users WHERE id = $1 AND team = $2" with id and team as parameters
/// ```
///
/// Identifiers (table and column names) cannot be parameters. When they must be dynamic, use
/// ``StringInterpolation/appendInterpolation(identifier:)``, which quotes them, or build raw text with
/// ``PostgresQuery/init(unsafeSQL:bindings:)`` after validating it yourself.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation {
    /// The statement text with `$n` placeholders.
    public var sql: String
    /// The parameter values.
    public var bindings: PostgresBindings

    /// Creates a query from raw SQL text and separately encoded bindings.
    ///
    /// The text is sent as written: never build it from untrusted input. Use string interpolation instead.
    ///
    /// - Parameters:
    ///   - unsafeSQL: The statement text, with `$1`…`$n` for the bindings.
    ///   - bindings: The values for the placeholders.
    public init(unsafeSQL: String, bindings: PostgresBindings = PostgresBindings()) {
        self.sql = unsafeSQL
        self.bindings = bindings
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.bindings = PostgresBindings()
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.bindings = stringInterpolation.bindings
    }

    /// Collects the SQL text and the interpolated parameters.
    ///
    /// A placeholder followed at once by a digit (`"SELECT \(a)0"`) would read as another placeholder (`$10`) and,
    /// with ten or more values, silently bind the wrong one. Interpolation cannot throw, so the query records the
    /// mistake as its encoding failure, like a value that cannot be encoded: running it fails with
    /// ``PostgresError/Code/encodingFailed`` before anything is sent.
    public struct StringInterpolation: StringInterpolationProtocol {
        @usableFromInline var sql: String
        @usableFromInline var bindings: PostgresBindings
        /// Whether the text ends with a placeholder just written (a digit must not follow it).
        @usableFromInline var endsWithPlaceholder = false

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            bindings = PostgresBindings(capacity: interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            guard let first = literal.utf8.first else { return }
            if endsWithPlaceholder, (0x30...0x39).contains(first) {
                bindings.buffer.fail(
                    "the query text puts a digit right after the placeholder $\(bindings.count) (as in "
                        + "\"\\(value)0\"), which PostgreSQL would read as a different placeholder; put a space, a "
                        + "cast or parentheses between them"
                )
            }
            endsWithPlaceholder = false
            sql.append(literal)
        }

        /// Binds `value` as the next parameter and writes its placeholder (`$n`).
        ///
        /// - Parameter value: The value; `nil` binds NULL.
        @inlinable public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            bindings.append(value)
            appendPlaceholder()
        }

        /// Binds an optional value as the next parameter: `nil` binds SQL NULL.
        ///
        /// - Parameter value: The value or `nil`.
        @inlinable public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            bindings.append(value)
            appendPlaceholder()
        }

        /// Appends `$n` for the latest binding without building a temporary string for small `n`.
        @inlinable mutating func appendPlaceholder() {
            let number = bindings.count
            sql.unicodeScalars.append("$")
            if number < 10 {
                sql.unicodeScalars.append(Unicode.Scalar(UInt8(48 + number)))
            } else {
                sql.append(String(number))
            }
            endsWithPlaceholder = true
        }

        /// Writes `identifier` as a quoted SQL identifier (`"my ""table"""`).
        ///
        /// Use it for table or column names chosen at run time. The name is quoted, so it cannot end the
        /// identifier and inject SQL; it may still name a table the caller should not reach.
        ///
        /// - Parameter identifier: The identifier, unquoted.
        public mutating func appendInterpolation(identifier: String) {
            sql.append(PostgresQuery.quoteIdentifier(identifier))
            endsWithPlaceholder = false
        }
    }

    /// Quotes an identifier: wraps it in double quotes and doubles the quotes inside. NUL bytes are dropped,
    /// because PostgreSQL cannot store them in identifiers.
    ///
    /// - Parameter identifier: The identifier, unquoted.
    /// - Returns: The quoted identifier.
    public static func quoteIdentifier(_ identifier: String) -> String {
        var quoted = "\""
        for character in identifier.unicodeScalars where character != "\0" {
            if character == "\"" { quoted.append("\"\"") } else { quoted.unicodeScalars.append(character) }
        }
        quoted.append("\"")
        return quoted
    }
}
