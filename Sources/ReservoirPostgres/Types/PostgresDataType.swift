/// A PostgreSQL data type, identified by its OID.
///
/// Built-in types have stable OIDs and named constants. Enums, composites, domains and extension types get OIDs
/// that differ per database; they appear as `PostgresDataType(rawValue:)` with a ``name-swift.property`` of the form `oid 16421`.
public struct PostgresDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The type's OID.
    public let rawValue: UInt32

    /// Wraps an OID.
    ///
    /// - Parameter rawValue: The type OID as `pg_type.oid`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Lets the server infer the type from the statement (OID 0).
    public static let unspecified = PostgresDataType(rawValue: 0)
    public static let bool = PostgresDataType(rawValue: 16)
    public static let bytea = PostgresDataType(rawValue: 17)
    public static let char = PostgresDataType(rawValue: 18)
    public static let name = PostgresDataType(rawValue: 19)
    public static let int8 = PostgresDataType(rawValue: 20)
    public static let int2 = PostgresDataType(rawValue: 21)
    public static let int4 = PostgresDataType(rawValue: 23)
    public static let text = PostgresDataType(rawValue: 25)
    public static let oid = PostgresDataType(rawValue: 26)
    public static let json = PostgresDataType(rawValue: 114)
    public static let xml = PostgresDataType(rawValue: 142)
    public static let float4 = PostgresDataType(rawValue: 700)
    public static let float8 = PostgresDataType(rawValue: 701)
    public static let unknown = PostgresDataType(rawValue: 705)
    public static let boolArray = PostgresDataType(rawValue: 1000)
    public static let byteaArray = PostgresDataType(rawValue: 1001)
    public static let int2Array = PostgresDataType(rawValue: 1005)
    public static let int4Array = PostgresDataType(rawValue: 1007)
    public static let textArray = PostgresDataType(rawValue: 1009)
    public static let varcharArray = PostgresDataType(rawValue: 1015)
    public static let int8Array = PostgresDataType(rawValue: 1016)
    public static let float4Array = PostgresDataType(rawValue: 1021)
    public static let float8Array = PostgresDataType(rawValue: 1022)
    public static let bpchar = PostgresDataType(rawValue: 1042)
    public static let varchar = PostgresDataType(rawValue: 1043)
    public static let date = PostgresDataType(rawValue: 1082)
    public static let time = PostgresDataType(rawValue: 1083)
    public static let timestamp = PostgresDataType(rawValue: 1114)
    public static let timestampArray = PostgresDataType(rawValue: 1115)
    public static let timestamptz = PostgresDataType(rawValue: 1184)
    public static let timestamptzArray = PostgresDataType(rawValue: 1185)
    public static let interval = PostgresDataType(rawValue: 1186)
    public static let numeric = PostgresDataType(rawValue: 1700)
    public static let numericArray = PostgresDataType(rawValue: 1231)
    public static let uuid = PostgresDataType(rawValue: 2950)
    public static let uuidArray = PostgresDataType(rawValue: 2951)
    public static let jsonb = PostgresDataType(rawValue: 3802)
    public static let jsonbArray = PostgresDataType(rawValue: 3807)
    public static let jsonArray = PostgresDataType(rawValue: 199)

    /// The SQL name of a built-in type (`int4`, `text[]`, …), or `oid N` for others.
    public var name: String {
        switch rawValue {
        case 0: "unspecified"
        case 16: "bool"
        case 17: "bytea"
        case 18: "char"
        case 19: "name"
        case 20: "int8"
        case 21: "int2"
        case 23: "int4"
        case 25: "text"
        case 26: "oid"
        case 114: "json"
        case 142: "xml"
        case 199: "json[]"
        case 700: "float4"
        case 701: "float8"
        case 705: "unknown"
        case 1000: "bool[]"
        case 1001: "bytea[]"
        case 1005: "int2[]"
        case 1007: "int4[]"
        case 1009: "text[]"
        case 1015: "varchar[]"
        case 1016: "int8[]"
        case 1021: "float4[]"
        case 1022: "float8[]"
        case 1042: "bpchar"
        case 1043: "varchar"
        case 1082: "date"
        case 1083: "time"
        case 1114: "timestamp"
        case 1115: "timestamp[]"
        case 1184: "timestamptz"
        case 1185: "timestamptz[]"
        case 1186: "interval"
        case 1231: "numeric[]"
        case 1700: "numeric"
        case 2950: "uuid"
        case 2951: "uuid[]"
        case 3802: "jsonb"
        case 3807: "jsonb[]"
        default: "oid \(rawValue)"
        }
    }

    public var description: String { name }

    /// Whether values of this type travel as plain text bytes in the binary format too.
    var isTextLike: Bool {
        switch rawValue {
        case 25, 1043, 1042, 19, 705, 142, 114, 18: true
        // User-defined types (enums in practice): their binary form is the label.
        default: rawValue >= 16384
        }
    }
}

/// The wire format of a value: PostgreSQL's text or binary representation.
public struct PostgresFormat: Hashable, Sendable {
    @usableFromInline let rawValue: Int32
    /// The text representation.
    public static let text = PostgresFormat(rawValue: 0)
    /// The binary representation (big-endian, type specific).
    public static let binary = PostgresFormat(rawValue: 1)
}
