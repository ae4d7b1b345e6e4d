import Foundation

extension PostgresRow {
    /// How ``PostgresRow/decode(as:keyStrategy:)`` maps property names to column names.
    public struct KeyStrategy: Sendable {
        let transform: @Sendable (String) -> String

        /// Property names are column names.
        public static let useDefaultKeys = KeyStrategy { $0 }
        /// `createdAt` reads the column `created_at`.
        public static let convertToSnakeCase = KeyStrategy { name in
            var result = ""
            for character in name {
                if character.isUppercase {
                    if !result.isEmpty { result.append("_") }
                    result.append(contentsOf: character.lowercased())
                } else {
                    result.append(character)
                }
            }
            return result
        }

        /// Maps names with your own function.
        ///
        /// - Parameter transform: Returns the column name for a property name.
        /// - Returns: The strategy.
        public static func custom(_ transform: @escaping @Sendable (String) -> String) -> KeyStrategy {
            KeyStrategy(transform: transform)
        }
    }

    /// Decodes the row into a `Decodable` type, one property per column, matched by name.
    ///
    /// Properties of a ``PostgresDecodable`` type decode directly; other nested `Decodable` values decode from
    /// `json`/`jsonb` columns; `RawRepresentable` enums decode through their raw value. A missing column for an
    /// optional property gives `nil`.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - keyStrategy: How property names map to column names; `.useDefaultKeys` by default.
    /// - Returns: The decoded value.
    /// - Throws: ``PostgresError`` (`.decodingFailed`) naming the column when one does not decode.
    public func decode<Value: Decodable>(
        as type: Value.Type,
        keyStrategy: KeyStrategy = .useDefaultKeys
    ) throws -> Value {
        do {
            return try Value(from: RowDecoder(row: self, keyStrategy: keyStrategy))
        } catch let error as PostgresError {
            throw error
        } catch {
            throw PostgresError(
                .decodingFailed,
                message: "the row does not decode as \(Value.self): "
                    + PostgresError.describingWithoutValues(error),
                underlying: error
            )
        }
    }
}

private struct RowDecoder: Decoder {
    let row: PostgresRow
    let keyStrategy: PostgresRow.KeyStrategy
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowContainer<Key>(row: row, keyStrategy: keyStrategy))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw PostgresError(.decodingFailed, message: "a row decodes into a keyed type, not an array")
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        guard row.columnCount == 1 else {
            throw PostgresError(
                .decodingFailed,
                message: "a single value decodes only from a row with one column, this one has \(row.columnCount)"
            )
        }
        return CellDecoder(row: row, column: 0, codingPath: [])
    }
}

private struct RowContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: PostgresRow
    let keyStrategy: PostgresRow.KeyStrategy
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { row.allColumnNames.compactMap { Key(stringValue: $0) } }

    private func column(for key: Key) throws -> Int {
        let name = keyStrategy.transform(key.stringValue)
        guard let index = row.columnIndex(named: name) else {
            var error = PostgresError(
                .decodingFailed,
                message: "the result has no column \"\(name)\" for property \(key.stringValue) "
                    + "(columns: \(row.allColumnNames.joined(separator: ", ")))"
            )
            error.columnName = name
            throw error
        }
        return index
    }

    func contains(_ key: Key) -> Bool { row.columnIndex(named: keyStrategy.transform(key.stringValue)) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let index = row.columnIndex(named: keyStrategy.transform(key.stringValue)) else { return true }
        return row.isNull(column: index)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try CellDecoder(row: row, column: column(for: key), codingPath: [key]).decode(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        throw PostgresError(.decodingFailed, message: "nested containers need a json or jsonb column")
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw PostgresError(.decodingFailed, message: "nested containers need a json or jsonb column")
    }

    func superDecoder() throws -> any Decoder { RowDecoder(row: row, keyStrategy: keyStrategy) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row, keyStrategy: keyStrategy) }
}

/// Decodes one cell: directly for `PostgresDecodable` types, through JSON for other nested types.
private struct CellDecoder: Decoder, SingleValueDecodingContainer {
    let row: PostgresRow
    let column: Int
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw mismatch("a keyed value")
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw mismatch("an array") }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { row.isNull(column: column) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let decodable = T.self as? any PostgresDecodable.Type {
            return try decodeDirect(decodable)
        }
        let dataType = row.dataType(column: column)
        if dataType == .json || dataType == .jsonb {
            let bytes = try row.decode([UInt8].self, column: column)
            do {
                return try JSONDecoder().decode(T.self, from: Data(bytes))
            } catch {
                let reason = "JSON does not decode: \(PostgresError.describingWithoutValues(error))"
                throw row.decodingError(.invalidValue(reason), type: T.self, column: column)
            }
        }
        // Types such as RawRepresentable enums decode themselves from a single value.
        return try T(from: self)
    }

    private func decodeDirect<T, D: PostgresDecodable>(_ type: D.Type) throws -> T {
        let value = try row.decode(D.self, column: column)
        guard let typed = value as? T else { throw mismatch("\(T.self)") }
        return typed
    }

    private func mismatch(_ what: String) -> PostgresError {
        row.decodingError(.typeMismatch, type: Any.self, column: column).with(message:
            "column \"\(row.columnName(column))\" of type \(row.dataType(column: column).name) cannot be decoded as \(what)"
        )
    }
}

extension PostgresError {
    func with(message: String) -> PostgresError {
        var copy = self
        copy.message = message
        return copy
    }
}
