import CLibPQ
import Tracing

/// Records one client span per statement, following OpenTelemetry's database span conventions, when a tracer is
/// configured or bootstrapped.
///
/// It is decided once, when a connection opens: with no tracer (swift-distributed-tracing's `NoOpTracer`), the
/// connection holds `nil` and a statement pays one `nil` check.
///
/// Attributes: `db.system.name` (`postgresql`), `db.namespace`, `server.address`, `server.port`,
/// `db.operation.name` (the statement's first keyword), `db.query.text` (only for statements built by
/// interpolation, whose values travel as `$n` parameters: raw SQL may hold literal values and is left out),
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
        if parameterised { attributes["db.query.text"] = sql }
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
