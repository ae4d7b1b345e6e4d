extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .bool }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) {
        buffer.writeInteger(self ? 1 as UInt8 : 0)
    }

    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        guard cell.type == .bool else { throw .typeMismatch }
        self = try cell.readInteger(UInt8.self) != 0
    }
}

extension UInt8: PostgresEncodable, PostgresDecodable {
    /// A single byte travels as PostgreSQL's one-byte `"char"` type.
    public static var postgresType: PostgresDataType { .char }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(self) }

    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        guard cell.type == .char else { throw .typeMismatch }
        self = try cell.readInteger(UInt8.self)
    }
}

extension Int16: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int2 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(self) }

    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        guard cell.type == .int2 else { throw .typeMismatch }
        self = try cell.readInteger()
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int4 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(self) }

    /// Decodes `int4` and, widening, `int2`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .int4: self = try cell.readInteger()
        case .int2: self = Int32(try cell.readInteger(Int16.self))
        default: throw .typeMismatch
        }
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int8 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(self) }

    /// Decodes `int8` and, widening, `int4`, `int2` and `oid`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .int8: self = try cell.readInteger()
        case .int4: self = Int64(try cell.readInteger(Int32.self))
        case .int2: self = Int64(try cell.readInteger(Int16.self))
        case .oid: self = Int64(try cell.readInteger(UInt32.self))
        default: throw .typeMismatch
        }
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    /// `Int` is 64 bits on every platform this library supports and travels as `int8`.
    public static var postgresType: PostgresDataType { .int8 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(Int64(self)) }

    /// Decodes `int8`, `int4`, `int2` and `oid`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        self = Int(try Int64(postgresCell: cell))
    }
}

extension Float: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .float4 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(bitPattern) }

    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        guard cell.type == .float4 else { throw .typeMismatch }
        self = Float(bitPattern: try cell.readInteger(UInt32.self))
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .float8 }

    @inlinable public func encode(into buffer: inout PostgresEncodingBuffer) { buffer.writeInteger(bitPattern) }

    /// Decodes `float8` and, widening, `float4`.
    public init(postgresCell cell: PostgresCell) throws(PostgresDecodingFailure) {
        switch cell.type {
        case .float8: self = Double(bitPattern: try cell.readInteger(UInt64.self))
        case .float4: self = Double(Float(bitPattern: try cell.readInteger(UInt32.self)))
        default: throw .typeMismatch
        }
    }
}
