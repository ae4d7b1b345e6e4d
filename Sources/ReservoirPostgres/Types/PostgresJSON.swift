import Foundation

/// A `Codable` value stored as JSON: encodes as `jsonb`, decodes from `json` or `jsonb`.
///
/// ```swift
/// struct Settings: Codable, Sendable { var theme: String }
/// try await connection.execute("UPDATE users SET settings = \(PostgresJSON(Settings(theme: "dark")))")
/// let settings = try row.decode(PostgresJSON<Settings>.self, column: "settings").value
/// ```
///
/// To read JSON as bytes or text instead, decode the column as `[UInt8]`, `Data` or `String`.
public struct PostgresJSON<Value: Codable & Sendable>: Sendable, PostgresEncodable, PostgresDecodable {
    /// The wrapped value.
    public var value: Value

    /// Wraps a value.
    ///
    /// - Parameter value: The value to send as JSON.
    public init(_ value: Value) { self.value = value }

    public static var postgresType: PostgresDataType { .jsonb }

    public func encode(into buffer: inout PostgresEncodingBuffer) {
        do {
            let data = try JSONEncoder().encode(value)
            buffer.writeInteger(UInt8(1))
            buffer.writeBytes(data)
        } catch {
            buffer.fail(
                "a PostgresJSON<\(Value.self)> parameter could not be encoded: "
                    + PostgresError.describingWithoutValues(error)
            )
        }
    }

    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        let bytes: UnsafeRawBufferPointer
        switch cell.type {
        case .json: bytes = cell.bytes
        case .jsonb:
            guard cell.bytes.first == 1 else { throw .invalidValue("unknown jsonb version") }
            bytes = UnsafeRawBufferPointer(rebasing: cell.bytes.dropFirst())
        default: throw .typeMismatch
        }
        do {
            value = try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            throw .invalidValue(
                "JSON does not decode as \(Value.self): \(PostgresError.describingWithoutValues(error))"
            )
        }
    }
}
