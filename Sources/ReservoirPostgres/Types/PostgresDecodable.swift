/// A Swift type that can be decoded from a result column.
///
/// Results arrive in PostgreSQL's binary format. Conforming types check the column's ``PostgresCell/type`` and
/// read its bytes; they throw ``PostgresDecodingFailure`` when the type does not fit. The row turns that into a
/// ``PostgresError`` naming the column, the Swift type and the PostgreSQL type.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value.
    ///
    /// - Parameter cell: The column's type and bytes; the bytes are valid only during this call.
    /// - Throws: ``PostgresDecodingFailure`` when the column's type or bytes do not fit.
    init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure)

    /// Decodes SQL NULL. The default throws ``PostgresDecodingFailure/unexpectedNull``; `Optional` returns `nil`.
    static func decodeNull() throws(PostgresDecodingFailure) -> Self
}

extension PostgresDecodable {
    public static func decodeNull() throws(PostgresDecodingFailure) -> Self {
        throw .unexpectedNull
    }
}

/// One column value of one row, as the decoder sees it.
///
/// The bytes point into the result held by the row; do not keep them beyond the decoding call.
public struct PostgresCell {
    /// The column's PostgreSQL type.
    public let type: PostgresDataType
    /// The column's wire format; results from this driver are always binary.
    public let format: PostgresFormat
    /// The value's bytes (not NULL: NULL goes to ``PostgresDecodable/decodeNull()``).
    public let bytes: UnsafeRawBufferPointer

    /// Creates a cell; used by the driver and by tests of custom types.
    ///
    /// - Parameters:
    ///   - type: The column type.
    ///   - format: The wire format of `bytes`.
    ///   - bytes: The value bytes.
    public init(type: PostgresDataType, format: PostgresFormat = .binary, bytes: UnsafeRawBufferPointer) {
        self.type = type
        self.format = format
        self.bytes = bytes
    }

    /// Reads a big-endian integer at `offset`.
    ///
    /// - Parameters:
    ///   - type: The integer type.
    ///   - offset: The byte offset.
    /// - Returns: The integer.
    /// - Throws: ``PostgresDecodingFailure`` when the bytes end before the integer does.
    @inlinable public func readInteger<I: FixedWidthInteger>(
        _ type: I.Type = I.self,
        at offset: Int = 0
    ) throws(PostgresDecodingFailure) -> I {
        guard offset >= 0, offset + MemoryLayout<I>.size <= bytes.count else {
            throw .invalidValue("expected \(MemoryLayout<I>.size) bytes at offset \(offset), got \(bytes.count)")
        }
        return I(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: I.self))
    }

    /// The bytes as a UTF-8 string.
    public var string: String { String(decoding: bytes, as: UTF8.self) }
}

/// Why a value could not be decoded; the row adds the column and both type names.
public struct PostgresDecodingFailure: Error, Sendable, Equatable {
    enum Kind: Equatable, Sendable {
        case typeMismatch
        case unexpectedNull
        case invalidValue(String)
    }

    let kind: Kind

    /// The column's PostgreSQL type cannot be decoded as the requested Swift type.
    public static let typeMismatch = PostgresDecodingFailure(kind: .typeMismatch)
    /// The column is NULL but the requested Swift type is not optional.
    public static let unexpectedNull = PostgresDecodingFailure(kind: .unexpectedNull)
    /// The bytes are not a valid value of the type (for example a value out of the Swift type's range).
    ///
    /// - Parameter reason: What is wrong, without the value when it may be sensitive.
    /// - Returns: The failure.
    public static func invalidValue(_ reason: String) -> PostgresDecodingFailure {
        PostgresDecodingFailure(kind: .invalidValue(reason))
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        self = .some(try Wrapped(postgresCell: cell))
    }

    public static func decodeNull() throws(PostgresDecodingFailure) -> Wrapped? { nil }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresDataType { Wrapped.postgresType }
    public static var postgresFormat: PostgresFormat { Wrapped.postgresFormat }
    public func encode(into buffer: inout PostgresEncodingBuffer) {
        switch self {
        case .some(let value): value.encode(into: &buffer)
        case .none: buffer.writeNull()
        }
    }
}
