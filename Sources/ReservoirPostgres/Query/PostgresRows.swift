import Glibc
import CLibPQ

/// The rows a statement returned, plus its command tag.
///
/// A random-access collection of ``PostgresRow``. The rows share one buffer received from the server and are
/// decoded on access, so holding `PostgresRows` costs the result's size, nothing more.
public struct PostgresRows: RandomAccessCollection, Sendable {
    let storage: PostgresResultStorage?

    init(storage: PostgresResultStorage?) {
        self.storage = storage
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage?.rowCount ?? 0 }

    public subscript(position: Int) -> PostgresRow {
        precondition(position >= 0 && position < endIndex, "row index \(position) out of range 0..<\(endIndex)")
        return PostgresRow(storage: storage!, index: Int32(position))
    }

    /// The command tag, such as `INSERT 0 3` or `SELECT 2`; empty when the statement returned nothing.
    public var commandTag: String { storage?.commandTag ?? "" }

    /// The number of rows the statement inserted, updated, deleted, selected, moved, fetched or copied; `nil` for
    /// other statements.
    public var affectedRowCount: Int? { storage?.affectedRowCount }

    /// The column names, in order.
    public var columnNames: [String] {
        guard let storage else { return [] }
        return (0..<Int32(storage.columnCount)).map { String(cString: PQfname(storage.pointer, $0)) }
    }

    /// The column types, in order.
    public var columnTypes: [PostgresDataType] {
        guard let storage else { return [] }
        return (0..<Int32(storage.columnCount)).map { PostgresDataType(rawValue: PQftype(storage.pointer, $0)) }
    }

    /// Decodes the only column of the only row, or returns `nil` when there is no row.
    ///
    /// - Parameter type: The Swift type of the value.
    /// - Returns: The value of the first column of the first row, or `nil` for an empty result.
    /// - Throws: ``PostgresError`` with code `.decodingFailed` when the value does not decode as `type`.
    public func singleValue<Value: PostgresDecodable>(_ type: Value.Type = Value.self) throws -> Value? {
        guard let first else { return nil }
        return try first.decode(Value.self, column: 0)
    }
}

/// One row of a result.
///
/// Decode columns by index (``decode(_:column:)-(_,Int)``) or by name (``decode(_:column:)-(_,String)``), all
/// columns into a tuple (``decode(_:)``), or the row into a `Decodable` type (``decode(as:keyStrategy:)``). A column of the
/// wrong type throws a ``PostgresError`` with code `.decodingFailed` that names the column, the Swift type and the
/// PostgreSQL type.
public struct PostgresRow: Sendable {
    let storage: PostgresResultStorage
    let index: Int32

    /// The number of columns.
    public var columnCount: Int { storage.columnCount }

    /// The index of the column called `name` (exact, case-sensitive match), or `nil`.
    ///
    /// - Parameter name: The column name as the server reports it.
    /// - Returns: The index of the first column with that name.
    public func columnIndex(named name: String) -> Int? {
        var name = name
        return name.withUTF8 { wanted in
            for column in 0..<Int32(storage.columnCount) {
                guard let field = PQfname(storage.pointer, column) else { continue }
                let length = strlen(field)
                guard length == wanted.count else { continue }
                if length == 0 { return Int(column) }
                if let base = wanted.baseAddress, memcmp(field, base, length) == 0 { return Int(column) }
            }
            return nil
        }
    }

    /// The name of column `column`.
    ///
    /// - Parameter column: The column index.
    /// - Returns: The name.
    public func columnName(_ column: Int) -> String {
        guard column >= 0, column < storage.columnCount else { return "#\(column)" }
        return String(cString: PQfname(storage.pointer, Int32(column)))
    }

    /// Whether column `column` is SQL NULL.
    ///
    /// - Parameter column: The column index.
    /// - Returns: `true` for NULL.
    public func isNull(column: Int) -> Bool {
        PQgetisnull(storage.pointer, index, Int32(column)) == 1
    }

    /// The PostgreSQL type of column `column`.
    ///
    /// - Parameter column: The column index.
    /// - Returns: The column's type.
    public func dataType(column: Int) -> PostgresDataType {
        PostgresDataType(rawValue: PQftype(storage.pointer, Int32(column)))
    }

    /// Decodes column `column` as `type`.
    ///
    /// - Parameters:
    ///   - type: The Swift type; make it optional to accept NULL.
    ///   - column: The 0-based column index.
    /// - Returns: The decoded value.
    /// - Throws: ``PostgresError`` (`.decodingFailed`) for a type mismatch, NULL into a non-optional, an invalid
    ///   value or a column index out of range.
    @inlinable public func decode<Value: PostgresDecodable>(
        _ type: Value.Type = Value.self,
        column: Int
    ) throws -> Value {
        do {
            return try decodeUnchecked(Value.self, column: column)
        } catch {
            throw decodingError(error, type: Value.self, column: column)
        }
    }

    /// Decodes the column called `column` as `type`.
    ///
    /// - Parameters:
    ///   - type: The Swift type; make it optional to accept NULL.
    ///   - column: The column name (exact match).
    /// - Returns: The decoded value.
    /// - Throws: ``PostgresError`` (`.decodingFailed`) when there is no such column or the value does not decode.
    public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, column: String) throws -> Value {
        guard let index = columnIndex(named: column) else {
            var error = PostgresError(
                .decodingFailed,
                message: "the result has no column named \"\(column)\" (columns: \(allColumnNames.joined(separator: ", ")))"
            )
            error.columnName = column
            throw error
        }
        return try decode(Value.self, column: index)
    }

    /// Decodes all columns, in order, into a tuple.
    ///
    /// ```swift
    /// let (id, name) = try row.decode((Int, String).self)
    /// ```
    ///
    /// - Parameter types: The tuple of Swift types, one per column.
    /// - Returns: The decoded tuple.
    /// - Throws: ``PostgresError`` (`.decodingFailed`) when the column count differs or a column does not decode.
    public func decode<each Value: PostgresDecodable>(_ types: (repeat each Value).Type) throws -> (repeat each Value) {
        var count = 0
        for _ in repeat (each Value).self { count += 1 }
        guard count == columnCount else {
            throw PostgresError(
                .decodingFailed,
                message: "decoding a tuple of \(count) values from a row with \(columnCount) columns"
            )
        }
        var column = 0
        func next<Element: PostgresDecodable>(_ type: Element.Type) throws -> Element {
            defer { column += 1 }
            return try decode(Element.self, column: column)
        }
        return (repeat try next((each Value).self))
    }

    @usableFromInline func decodeUnchecked<Value: PostgresDecodable>(
        _ type: Value.Type,
        column: Int
    ) throws(PostgresDecodingFailure) -> Value {
        guard column >= 0, column < storage.columnCount else {
            throw .invalidValue("column index \(column) is out of range 0..<\(storage.columnCount)")
        }
        let column = Int32(column)
        if PQgetisnull(storage.pointer, index, column) == 1 { return try Value.decodeNull() }
        guard PQfformat(storage.pointer, column) == 1 else {
            throw .invalidValue("the column arrived in text format")
        }
        let length = Int(PQgetlength(storage.pointer, index, column))
        let bytes = UnsafeRawBufferPointer(start: PQgetvalue(storage.pointer, index, column), count: length)
        let cell = PostgresCell(
            type: PostgresDataType(rawValue: PQftype(storage.pointer, column)),
            bytes: bytes
        )
        return try Value(postgresCell: cell)
    }

    var allColumnNames: [String] { (0..<columnCount).map(columnName) }

    @usableFromInline func decodingError(_ failure: PostgresDecodingFailure, type: Any.Type, column: Int) -> PostgresError {
        let name = columnName(column)
        let postgresType = column >= 0 && column < columnCount ? dataType(column: column).name : "none"
        let message: String
        switch failure.kind {
        case .typeMismatch:
            message = "column \"\(name)\" (index \(column)) of type \(postgresType) cannot be decoded as \(type)"
        case .unexpectedNull:
            message = "column \"\(name)\" (index \(column)) of type \(postgresType) is NULL; decode it as \(type)? to accept NULL"
        case .invalidValue(let reason):
            message = "column \"\(name)\" (index \(column)) of type \(postgresType) does not decode as \(type): \(reason)"
        }
        var error = PostgresError(.decodingFailed, message: message, underlying: failure)
        error.columnName = name
        error.dataTypeName = postgresType
        return error
    }
}
