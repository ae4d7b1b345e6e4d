import CLibPQ
import Tracing

/// Records one client span per statement, following OpenTelemetry's database span conventions, when a tracer is
/// configured or bootstrapped.
///
/// It is decided once, when a connection opens: with no tracer (swift-distributed-tracing's `NoOpTracer`), the
/// connection holds `nil` and a statement pays one `nil` check.
///
/// Attributes: `db.system.name` (`postgresql`), `db.namespace`, `server.address`, `server.port`,
/// `db.operation.name` (the statement's first keyword), `db.query.text` (only for parameterised text: a statement
/// built by interpolation, whose values travel as `$n` parameters, and which holds no literal of its own — see
/// ``holdsNoLiterals(_:)``; raw SQL from `PostgresQuery(unsafeSQL:)` and pipelines is recorded only when it holds no
/// literal either, so a value written into the text is never recorded),
/// `db.response.returned_rows`, `db.operation.batch.size` for pipelines, and on failure
/// `db.response.status_code` (the SQLSTATE) and `error.type`.
struct StatementTracing: Sendable {
    let tracer: any Tracer
    let namespace: String?
    let serverAddress: String?
    let serverPort: Int?

    /// The tracing for a connection, or `nil` when no tracer records anything.
    static func make(
        configured: (any Tracer)?,
        namespace: String?,
        serverAddress: String?,
        serverPort: Int?
    ) -> StatementTracing? {
        let tracer = configured ?? InstrumentationSystem.tracer
        if tracer is NoOpTracer { return nil }
        return StatementTracing(
            tracer: tracer,
            namespace: namespace,
            serverAddress: serverAddress,
            serverPort: serverPort
        )
    }

    /// Runs `body` inside a client span named for the statement.
    ///
    /// - Parameters:
    ///   - sql: the statement text, to name the span.
    ///   - parameterised: whether `sql` holds only `$n` placeholders for values (then it is recorded).
    ///   - batchSize: the number of statements of a pipeline, or `nil`.
    ///   - body: the statement's execution.
    ///   - rows: the number of rows in the result, if it has any.
    func withSpan<Result>(
        sql: String,
        parameterised: Bool,
        batchSize: Int? = nil,
        _ body: () async throws -> Result,
        rows: (Result) -> Int?
    ) async throws -> Result {
        let operation = batchSize == nil ? Self.operationName(of: sql) : "BATCH"
        let span = tracer.startSpan(operation, ofKind: .client)
        defer { span.end() }
        var attributes = SpanAttributes()
        attributes["db.system.name"] = "postgresql"
        attributes["db.operation.name"] = operation
        if let namespace { attributes["db.namespace"] = namespace }
        if let serverAddress { attributes["server.address"] = serverAddress }
        if let serverPort { attributes["server.port"] = serverPort }
        if parameterised, Self.holdsNoLiterals(sql) { attributes["db.query.text"] = sql }
        if let batchSize { attributes["db.operation.batch.size"] = batchSize }
        span.attributes = attributes
        do {
            let result = try await body()
            if let count = rows(result) { span.attributes["db.response.returned_rows"] = count }
            return result
        } catch {
            if let error = error as? PostgresError {
                if let state = error.sqlState?.rawValue {
                    span.attributes["db.response.status_code"] = state
                    span.attributes["error.type"] = state
                } else {
                    span.attributes["error.type"] = "\(error.code)"
                }
            } else {
                span.attributes["error.type"] = error is CancellationError ? "cancelled" : "\(type(of: error))"
            }
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Whether `sql` holds no literal value: no string constant (`'…'`, `E'…'`, `$tag$…$tag$`), no number outside a
    /// `$n` placeholder or an identifier. Such text carries its values only as parameters and may be recorded; any
    /// other text may hold a password, an email address or a card number and is not.
    ///
    /// A small lexer, cautious by design: an unterminated quote, or anything it cannot read, counts as a literal.
    static func holdsNoLiterals(_ sql: String) -> Bool {
        let bytes = Array(sql.utf8)
        var index = 0
        func isIdentifierStart(_ byte: UInt8) -> Bool {
            (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x5F || byte >= 0x80
        }
        func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"):
                return false  // a string constant (also the quote of E'…', B'…', X'…', U&'…')
            case UInt8(ascii: "\""):
                // A quoted identifier: skip to its closing quote ("" is an escaped quote inside).
                index += 1
                while index < bytes.count {
                    if bytes[index] == UInt8(ascii: "\"") {
                        if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                            index += 2
                            continue
                        }
                        break
                    }
                    index += 1
                }
                if index >= bytes.count { return false }
                index += 1
            case UInt8(ascii: "$"):
                index += 1
                if index < bytes.count, isDigit(bytes[index]) {
                    while index < bytes.count, isDigit(bytes[index]) { index += 1 }  // a $n placeholder
                } else {
                    return false  // a dollar-quoted string constant
                }
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                index += 2
                while index + 1 < bytes.count, !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/")) {
                    index += 1
                }
                if index + 1 >= bytes.count { return false }
                index += 2
            case _ where isDigit(byte):
                return false  // a numeric constant
            case UInt8(ascii: ".") where index + 1 < bytes.count && isDigit(bytes[index + 1]):
                return false  // a numeric constant such as .5
            case _ where isIdentifierStart(byte):
                // An identifier or keyword: digits and $ inside it are part of the name (t1, col_2).
                index += 1
                while index < bytes.count,
                    isIdentifierStart(bytes[index]) || isDigit(bytes[index]) || bytes[index] == UInt8(ascii: "$")
                {
                    index += 1
                }
                if index < bytes.count, bytes[index] == UInt8(ascii: "'") { return false }  // E'…', X'…'
            default:
                index += 1
            }
        }
        return true
    }

    /// The first keyword of a statement, upper-cased (`SELECT`, `INSERT`, `WITH`…), skipping leading blanks and
    /// comments; `postgresql` when there is none.
    static func operationName(of sql: String) -> String {
        var scalars = Substring(sql).unicodeScalars[...]
        while true {
            while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
            if scalars.starts(with: "--".unicodeScalars) {
                while let first = scalars.first, first != "\n" { scalars.removeFirst() }
            } else if scalars.starts(with: "/*".unicodeScalars) {
                scalars.removeFirst(2)
                while !scalars.isEmpty, !scalars.starts(with: "*/".unicodeScalars) { scalars.removeFirst() }
                if !scalars.isEmpty { scalars.removeFirst(2) }
            } else {
                break
            }
        }
        let keyword = scalars.prefix { $0.properties.isAlphabetic }
        return keyword.isEmpty ? "postgresql" : String(String.UnicodeScalarView(keyword)).uppercased()
    }
}
