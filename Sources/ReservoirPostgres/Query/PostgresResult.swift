import CLibPQ

/// Owns one libpq `PGresult` and frees it when the last reference goes.
///
/// A `PGresult` is read-only once libpq returns it, and libpq documents that it may be read from any thread, so
/// sharing it is safe as long as nobody calls the mutating `PQsetvalue` family, which this driver never does.
final class PostgresResultStorage: @unchecked Sendable {
    let pointer: OpaquePointer
    let rowCount: Int
    let columnCount: Int

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        rowCount = Int(PQntuples(pointer))
        columnCount = Int(PQnfields(pointer))
    }

    deinit { PQclear(pointer) }

    var commandTag: String { String(cString: PQcmdStatus(pointer)) }

    var affectedRowCount: Int? {
        let text = String(cString: PQcmdTuples(pointer))
        return text.isEmpty ? nil : Int(text)
    }
}

extension PostgresError {
    /// Builds a server error from a failed result, or a connection error from libpq's own message.
    static func from(
        result: OpaquePointer?,
        connection: OpaquePointer?,
        statement: String?
    ) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let result, let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let sqlState = field(CLIBPQ_DIAG_SQLSTATE)
        var message = field(CLIBPQ_DIAG_MESSAGE_PRIMARY)
        if message == nil, let result, let text = PQresultErrorMessage(result) {
            message = String(cString: text).trimmingNewlines()
        }
        if message == nil || message!.isEmpty, let connection, let text = PQerrorMessage(connection) {
            message = String(cString: text).trimmingNewlines()
        }
        let connectionBad = connection.map { PQstatus($0) == CONNECTION_BAD } ?? false
        let severity = field(CLIBPQ_DIAG_SEVERITY_NONLOCALIZED) ?? field(CLIBPQ_DIAG_SEVERITY)
        let code: PostgresError.Code
        if sqlState == nil || connectionBad || severity == "FATAL" || severity == "PANIC" {
            // libpq's own errors carry no SQLSTATE; FATAL and PANIC end the session.
            code = .connectionClosed
        } else {
            code = .server
        }
        var error = PostgresError(code, message: message ?? "unknown error")
        error.sqlState = sqlState.map(SQLState.init(rawValue:))
        error.severity = severity
        error.detail = field(CLIBPQ_DIAG_MESSAGE_DETAIL)
        error.hint = field(CLIBPQ_DIAG_MESSAGE_HINT)
        error.position = field(CLIBPQ_DIAG_STATEMENT_POSITION).flatMap { Int($0) }
        error.schemaName = field(CLIBPQ_DIAG_SCHEMA_NAME)
        error.tableName = field(CLIBPQ_DIAG_TABLE_NAME)
        error.columnName = field(CLIBPQ_DIAG_COLUMN_NAME)
        error.dataTypeName = field(CLIBPQ_DIAG_DATATYPE_NAME)
        error.constraintName = field(CLIBPQ_DIAG_CONSTRAINT_NAME)
        error.statement = statement
        return error
    }

    static func connectionMessage(_ connection: OpaquePointer?, fallback: String) -> String {
        guard let connection, let text = PQerrorMessage(connection) else { return fallback }
        let message = String(cString: text).trimmingNewlines()
        return message.isEmpty ? fallback : message
    }
}

extension String {
    func trimmingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last.isNewline || last == " " { text = text.dropLast() }
        return String(text)
    }
}
