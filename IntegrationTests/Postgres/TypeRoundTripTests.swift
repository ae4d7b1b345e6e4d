import Foundation
import ReservoirPostgres
import Testing

@Suite("Types round trip through the server")
struct TypeRoundTripTests {
    /// Sends `value` as a parameter, casts it on the server, and decodes what comes back.
    private func roundTrip<Value: PostgresEncodable & PostgresDecodable>(
        _ value: Value,
        cast: String,
        on connection: PostgresConnection
    ) async throws -> Value {
        var bindings = PostgresBindings()
        bindings.append(value)
        let rows = try await connection.query(PostgresQuery(unsafeSQL: "SELECT $1::\(cast)", bindings: bindings))
        return try #require(rows.first).decode(Value.self, column: 0)
    }

    @Test("integers keep their extremes")
    func integers() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            for value in [Int16.min, -1, 0, 1, .max] { #expect(try await roundTrip(value, cast: "int2", on: connection) == value) }
            for value in [Int32.min, -1, 0, .max] { #expect(try await roundTrip(value, cast: "int4", on: connection) == value) }
            for value in [Int64.min, -1, 0, .max] { #expect(try await roundTrip(value, cast: "int8", on: connection) == value) }
            for value in [Int.min, 42, Int.max] { #expect(try await roundTrip(value, cast: "int8", on: connection) == value) }
            // Narrower server types widen into wider Swift integers.
            let widened = try await connection.query("SELECT 7::int2 AS a, 8::int4 AS b")
            let (small, medium) = try widened[0].decode((Int64, Int).self)
            #expect(small == 7 && medium == 8)
        }
    }

    @Test("floating point keeps NaN, infinities and extremes")
    func floatingPoint() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            for value in [Double.infinity, -.infinity, 0, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 3.14159] {
                #expect(try await roundTrip(value, cast: "float8", on: connection) == value)
            }
            #expect(try await roundTrip(Double.nan, cast: "float8", on: connection).isNaN)
            for value in [Float.infinity, -.infinity, .greatestFiniteMagnitude, 1.5] {
                #expect(try await roundTrip(value, cast: "float4", on: connection) == value)
            }
            #expect(try await roundTrip(Float.nan, cast: "float4", on: connection).isNaN)
        }
    }

    @Test("booleans, strings and bytes survive, including empty and Unicode values")
    func textAndBytes() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            #expect(try await roundTrip(true, cast: "bool", on: connection) == true)
            #expect(try await roundTrip(false, cast: "bool", on: connection) == false)
            for value in ["", "plain", "héllo wörld", "🌍🚀 你好 مرحبا", String(repeating: "long ", count: 20_000)] {
                #expect(try await roundTrip(value, cast: "text", on: connection) == value)
                #expect(try await roundTrip(value, cast: "varchar", on: connection) == value)
            }
            let bytes = [UInt8](0...255)
            #expect(try await roundTrip(bytes, cast: "bytea", on: connection) == bytes)
            #expect(try await roundTrip([UInt8](), cast: "bytea", on: connection) == [])
            #expect(try await roundTrip(Data(bytes), cast: "bytea", on: connection) == Data(bytes))
        }
    }

    @Test("UUIDs and dates survive; infinite timestamps decode as distant dates")
    func uuidAndDates() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let uuid = UUID()
            #expect(try await roundTrip(uuid, cast: "uuid", on: connection) == uuid)
            let text = try await connection.query("SELECT \(uuid)::text")
            #expect(try text[0].decode(String.self, column: 0) == uuid.uuidString.lowercased())
            // Microsecond precision: pick a date that is exact in microseconds.
            let date = Date(timeIntervalSince1970: 1_700_000_000.123456)
            let back = try await roundTrip(date, cast: "timestamptz", on: connection)
            #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            let old = Date(timeIntervalSince1970: -2_000_000_000)
            #expect(try await roundTrip(old, cast: "timestamptz", on: connection) == old)
            let infinite = try await connection.query("SELECT 'infinity'::timestamptz, '-infinity'::timestamptz")
            let (future, past) = try infinite[0].decode((Date, Date).self)
            #expect(future == .distantFuture && past == .distantPast)
            let day = try await connection.query("SELECT '2000-01-02'::date")
            #expect(try day[0].decode(Date.self, column: 0) == Date(timeIntervalSince1970: 946_684_800 + 86_400))
        }
    }

    @Test("numeric decodes as Decimal and as exact text")
    func numeric() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            for text in ["0", "-12345.6789", "0.00000001", "12345678901234567890.123456789", "100", "-0.5"] {
                let decimal = try #require(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
                #expect(try await roundTrip(decimal, cast: "numeric", on: connection) == decimal)
                let rows = try await connection.query("SELECT \(decimal)::numeric")
                #expect(try rows[0].decode(String.self, column: 0) == text)
            }
            #expect(try await roundTrip(Decimal.nan, cast: "numeric", on: connection).isNaN)
            let scaled = try await connection.query("SELECT 1.50::numeric(10,3), 'Infinity'::numeric")
            let (exact, infinity) = try scaled[0].decode((String, String).self)
            #expect(exact == "1.500" && infinity == "Infinity")
        }
    }

    struct Settings: Codable, Sendable, Equatable {
        var theme: String
        var sizes: [Int]
    }

    @Test("JSON decodes into Codable values, bytes and text")
    func json() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let settings = Settings(theme: "dark \"ü\"", sizes: [1, 2, 3])
            let back = try await roundTrip(PostgresJSON(settings), cast: "jsonb", on: connection)
            #expect(back.value == settings)
            let rows = try await connection.query(#"SELECT '{"a": 1}'::json, '{"a": 1}'::jsonb"#)
            #expect(try rows[0].decode(String.self, column: 0) == #"{"a": 1}"#)
            #expect(try rows[0].decode(String.self, column: 1) == #"{"a": 1}"#)
            #expect(try rows[0].decode([UInt8].self, column: 1) == Array(#"{"a": 1}"#.utf8))
            let fromJSON = try await connection.query(#"SELECT '{"theme":"x","sizes":[]}'::json AS settings"#)
            #expect(try fromJSON[0].decode(PostgresJSON<Settings>.self, column: "settings").value
                == Settings(theme: "x", sizes: []))
        }
    }

    @Test("one-dimensional arrays round trip, with NULL elements and empty arrays")
    func arrays() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            #expect(try await roundTrip([1, 2, Int.max], cast: "int8[]", on: connection) == [1, 2, Int.max])
            #expect(try await roundTrip([Int32](), cast: "int4[]", on: connection) == [])
            #expect(try await roundTrip([Int16(-1), 5], cast: "int2[]", on: connection) == [-1, 5])
            let strings = ["", "a,b", "quote\"s", "{braces}", "ünï 🌍", "NULL"]
            #expect(try await roundTrip(strings, cast: "text[]", on: connection) == strings)
            #expect(try await roundTrip([true, false], cast: "bool[]", on: connection) == [true, false])
            #expect(try await roundTrip([1.5, -.infinity], cast: "float8[]", on: connection) == [1.5, -.infinity])
            let uuids = [UUID(), UUID()]
            #expect(try await roundTrip(uuids, cast: "uuid[]", on: connection) == uuids)
            let optionals: [Int?] = [1, nil, 3]
            #expect(try await roundTrip(optionals, cast: "int8[]", on: connection) == optionals)
            let fromServer = try await connection.query("SELECT ARRAY[1, NULL, 3]::int4[]")
            #expect(try fromServer[0].decode([Int32?].self, column: 0) == [1, nil, 3])
            #expect(throws: PostgresError.self) { try fromServer[0].decode([Int32].self, column: 0) }
            let twoDimensional = try await connection.query("SELECT ARRAY[[1,2],[3,4]]::int4[]")
            #expect(throws: PostgresError.self) { try twoDimensional[0].decode([Int32].self, column: 0) }
        }
    }

    @Test("NULL decodes as nil for every optional type and is an error for non-optionals")
    func nulls() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let rows = try await connection.query("""
                SELECT \(Int16?.none)::int2, \(Int32?.none)::int4, \(Int64?.none)::int8, \(Bool?.none)::bool,
                       \(Double?.none)::float8, \(Float?.none)::float4, \(String?.none)::text, \(Data?.none)::bytea,
                       \(UUID?.none)::uuid, \(Date?.none)::timestamptz, \(Decimal?.none)::numeric,
                       \([Int]?.none)::int8[], \(PostgresJSON<Settings>?.none)::jsonb
                """)
            let row = try #require(rows.first)
            let values = try row.decode(
                (Int16?, Int32?, Int64?, Bool?, Double?, Float?, String?, Data?, UUID?, Date?, Decimal?, [Int]?,
                 PostgresJSON<Settings>?).self
            )
            #expect(values.0 == nil && values.1 == nil && values.2 == nil && values.3 == nil && values.4 == nil)
            #expect(values.5 == nil && values.6 == nil && values.7 == nil && values.8 == nil && values.9 == nil)
            #expect(values.10 == nil && values.11 == nil && values.12 == nil)
            #expect(row.isNull(column: 0))
            let error = try #require(throws: PostgresError.self) { try row.decode(Int32.self, column: 1) }
            #expect(error.code == .decodingFailed)
            #expect(error.message.contains("is NULL"))
        }
    }
}
