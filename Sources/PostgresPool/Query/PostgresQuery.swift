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
    public struct StringInterpolation: StringInterpolationProtocol {
        @usableFromInline var sql: String
        @usableFromInline var bindings: PostgresBindings

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            bindings = PostgresBindings(capacity: interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql.append(literal)
        }

        /// Binds `value` as the next parameter and writes its placeholder (`$n`).
        ///
        /// - Parameter value: The value; `nil` binds NULL.
        @inlinable public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            bindings.append(value)
            sql.append("$")
            sql.append(String(bindings.count))
        }

        /// Writes `identifier` as a quoted SQL identifier (`"my ""table"""`).
        ///
        /// Use it for table or column names chosen at run time. The name is quoted, so it cannot end the
        /// identifier and inject SQL; it may still name a table the caller should not reach.
        ///
        /// - Parameter identifier: The identifier, unquoted.
        public mutating func appendInterpolation(identifier: String) {
            sql.append(PostgresQuery.quoteIdentifier(identifier))
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
