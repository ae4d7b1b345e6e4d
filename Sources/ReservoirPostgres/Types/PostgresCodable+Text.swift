import Foundation

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .text }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) {
        if utf8.contains(0) {
            buffer.fail("a String parameter contains a NUL byte, which PostgreSQL text cannot store")
        }
        buffer.writeString(self)
    }

    /// Decodes the text types (`text`, `varchar`, `bpchar`, `name`, `json`, `xml`, enums) and, converting to
    /// their text form, `jsonb`, `numeric` and `uuid`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .jsonb:
            guard cell.bytes.first == 1 else { throw .invalidValue("unknown jsonb version") }
            self = String(decoding: UnsafeRawBufferPointer(rebasing: cell.bytes.dropFirst()), as: UTF8.self)
        case .numeric:
            self = try PostgresNumeric.string(from: cell)
        case .uuid:
            self = try UUID(postgresCell: cell).uuidString.lowercased()
        default:
            guard cell.type.isTextLike else { throw .typeMismatch }
            self = String(decoding: cell.bytes, as: UTF8.self)
        }
    }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    /// `[UInt8]` travels as `bytea`; other arrays as the element's array type.
    public static var postgresType: PostgresDataType { Element.postgresArrayType }

    public func encode(into buffer: inout PostgresEncodingBuffer) {
        // Check the element type, not the value: an empty array of any type casts to [UInt8].
        if Element.self == UInt8.self, let bytes = self as? [UInt8] {
            buffer.writeBytes(bytes)
        } else {
            PostgresArrayCoding.encode(self, into: &buffer)
        }
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        if Element.self == UInt8.self {
            let bytes = try [UInt8](bytea: cell)
            guard let typed = bytes as? [Element] else { throw .typeMismatch }
            self = typed
        } else {
            self = try PostgresArrayCoding.decode(cell)
        }
    }
}

extension [UInt8] {
    /// Decodes `bytea`, and the raw bytes of `json`, `jsonb` (without its version byte) and the text types.
    init(bytea cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .bytea, .json:
            self = Array(cell.bytes)
        case .jsonb:
            guard cell.bytes.first == 1 else { throw .invalidValue("unknown jsonb version") }
            self = Array(cell.bytes.dropFirst())
        default:
            guard cell.type.isTextLike else { throw .typeMismatch }
            self = Array(cell.bytes)
        }
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .bytea }

    public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeBytes(self) }

    /// Decodes `bytea`, and the raw bytes of `json`, `jsonb` and the text types.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        self = Data(try [UInt8](bytea: cell))
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .uuid }

    public func encode(into buffer: inout PostgresEncodingBuffer) {
        withUnsafeBytes(of: uuid) { buffer.writeBytes($0) }
    }

    /// Decodes `uuid`, and text columns holding a UUID in its canonical form.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .uuid:
            guard cell.bytes.count == 16 else { throw .invalidValue("a uuid has 16 bytes, got \(cell.bytes.count)") }
            var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: cell.bytes) }
            self = UUID(uuid: value)
        default:
            guard cell.type.isTextLike, let value = UUID(uuidString: cell.string) else { throw .typeMismatch }
            self = value
        }
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
    static let postgresEpochOffset: TimeInterval = 946_684_800

    /// Dates travel as `timestamptz`, with microsecond precision.
    public static var postgresType: PostgresDataType { .timestamptz }

    public func encode(into buffer: inout PostgresEncodingBuffer) {
        let microseconds = ((timeIntervalSince1970 - Date.postgresEpochOffset) * 1_000_000).rounded()
        guard microseconds.isFinite, let value = Int64(exactly: microseconds) else {
            buffer.fail("a Date parameter is outside the range of timestamptz")
            return
        }
        buffer.writeInteger(value)
    }

    /// Decodes `timestamptz`, `timestamp` (read as UTC) and `date` (midnight UTC). PostgreSQL's `infinity` and
    /// `-infinity` decode as `Date.distantFuture` and `Date.distantPast`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .timestamptz, .timestamp:
            let microseconds = try cell.readInteger(Int64.self)
            switch microseconds {
            case .max: self = .distantFuture
            case .min: self = .distantPast
            default:
                self = Date(
                    timeIntervalSince1970: Date.postgresEpochOffset + TimeInterval(microseconds) / 1_000_000
                )
            }
        case .date:
            let days = try cell.readInteger(Int32.self)
            switch days {
            case .max: self = .distantFuture
            case .min: self = .distantPast
            default: self = Date(timeIntervalSince1970: Date.postgresEpochOffset + TimeInterval(days) * 86_400)
            }
        default:
            throw .typeMismatch
        }
    }
}

extension Decimal: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .numeric }
    /// Decimals are sent as text, which PostgreSQL parses exactly.
    public static var postgresFormat: PostgresFormat { .text }

    public func encode(into buffer: inout PostgresEncodingBuffer) {
        buffer.writeString(isNaN ? "NaN" : description)
    }

    /// Decodes `numeric` (including `NaN`), and the integer types. Values with more than 38 significant digits
    /// lose precision; decode them as `String` to keep every digit.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .numeric:
            let text = try PostgresNumeric.string(from: cell)
            if text == "NaN" {
                self = .nan
                return
            }
            guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
                throw .invalidValue("the numeric value does not fit in Decimal")
            }
            self = value
        case .int2, .int4, .int8:
            self = Decimal(try Int64(postgresCell: cell))
        default:
            throw .typeMismatch
        }
    }
}

/// PostgreSQL's binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
enum PostgresNumeric {
    static func string(from cell: PostgresCell) throws(PostgresDecodingFailure) -> String {
        let count = Int(try cell.readInteger(Int16.self, at: 0))
        let weight = Int(try cell.readInteger(Int16.self, at: 2))
        let sign = try cell.readInteger(UInt16.self, at: 4)
        let scale = Int(try cell.readInteger(Int16.self, at: 6))
        switch sign {
        case 0xC000: return "NaN"
        case 0xD000: return "Infinity"
        case 0xF000: return "-Infinity"
        case 0x0000, 0x4000: break
        default: throw .invalidValue("unknown numeric sign \(sign)")
        }
        var digits = [Int16]()
        digits.reserveCapacity(count)
        for index in 0..<count { digits.append(try cell.readInteger(Int16.self, at: 8 + 2 * index)) }
        func digit(_ index: Int) -> Int16 { index >= 0 && index < count ? digits[index] : 0 }
        func padded(_ value: Int16) -> String {
            let text = String(value)
            return String(repeating: "0", count: 4 - text.count) + text
        }
        var text = sign == 0x4000 ? "-" : ""
        if weight < 0 {
            text += "0"
        } else {
            for index in 0...weight { text += index == 0 ? String(digit(index)) : padded(digit(index)) }
        }
        if scale > 0 {
            var fraction = ""
            var index = weight + 1
            while fraction.count < scale {
                fraction += padded(digit(index))
                index += 1
            }
            text += "." + fraction.prefix(scale)
        }
        return text
    }
}
