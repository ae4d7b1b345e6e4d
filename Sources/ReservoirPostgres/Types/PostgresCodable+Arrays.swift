import Foundation

/// An element type of one-dimensional PostgreSQL arrays.
///
/// `[Element]` then encodes as ``postgresArrayType`` and decodes from it. Elements travel in binary, so types
/// sent as text (such as `Decimal`) cannot be array elements. `[UInt8]` is the exception that proves the rule:
/// it travels as `bytea`, not as `"char"[]`.
public protocol PostgresArrayElement: PostgresEncodable, PostgresDecodable {
    /// The array type whose elements are this type (`int4[]` for `Int32`).
    static var postgresArrayType: PostgresDataType { get }
}

extension Bool: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .boolArray } }
extension Int16: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .int2Array } }
extension Int32: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .int4Array } }
extension Int64: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .int8Array } }
extension Int: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .int8Array } }
extension Float: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .float4Array } }
extension Double: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .float8Array } }
extension String: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .textArray } }
extension UUID: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .uuidArray } }
extension Date: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .timestamptzArray } }
extension Data: PostgresArrayElement { public static var postgresArrayType: PostgresDataType { .byteaArray } }
extension UInt8: PostgresArrayElement {
    /// `[UInt8]` is `bytea`.
    public static var postgresArrayType: PostgresDataType { .bytea }
}

extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { Wrapped.postgresArrayType }
}

/// The binary array format: dimensions, a has-NULL flag, the element OID, then length-prefixed elements.
enum PostgresArrayCoding {
    static func encode<Element: PostgresArrayElement>(_ elements: [Element], into buffer: inout PostgresEncodingBuffer) {
        buffer.writeInteger(Int32(elements.isEmpty ? 0 : 1))
        let flagsOffset = buffer.bytes.count
        buffer.writeInteger(Int32(0))
        buffer.writeInteger(Element.postgresType.rawValue)
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(Int32(1))
        var hasNull = false
        for element in elements {
            let lengthOffset = buffer.bytes.count
            buffer.writeInteger(Int32(0))
            buffer.isNull = false
            element.encode(into: &buffer)
            let length: Int32
            if buffer.isNull {
                buffer.bytes.removeSubrange((lengthOffset + 4)...)
                length = -1
                hasNull = true
            } else {
                length = Int32(buffer.bytes.count - lengthOffset - 4)
            }
            withUnsafeBytes(of: length.bigEndian) { raw in
                for index in 0..<4 { buffer.bytes[lengthOffset + index] = raw[index] }
            }
        }
        buffer.isNull = false
        if hasNull { buffer.bytes[flagsOffset + 3] = 1 }
    }

    static func decode<Element: PostgresArrayElement>(
        _ cell: PostgresCell
    ) throws(PostgresDecodingFailure) -> [Element] {
        guard cell.type == Element.postgresArrayType else { throw .typeMismatch }
        let dimensions = try cell.readInteger(Int32.self, at: 0)
        let elementType = PostgresDataType(rawValue: try cell.readInteger(UInt32.self, at: 8))
        if dimensions == 0 { return [] }
        guard dimensions == 1 else {
            throw .invalidValue("only one-dimensional arrays decode into Array, got \(dimensions) dimensions")
        }
        let count = Int(try cell.readInteger(Int32.self, at: 12))
        var offset = 20
        var elements = [Element]()
        elements.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(try cell.readInteger(Int32.self, at: offset))
            offset += 4
            if length < 0 {
                elements.append(try Element.decodeNull())
                continue
            }
            guard offset + length <= cell.bytes.count else { throw .invalidValue("array element past the end") }
            let bytes = UnsafeRawBufferPointer(rebasing: cell.bytes[offset..<(offset + length)])
            elements.append(try Element(postgresCell: PostgresCell(type: elementType, bytes: bytes)))
            offset += length
        }
        return elements
    }
}
