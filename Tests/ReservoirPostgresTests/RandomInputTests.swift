import Foundation
import Testing

@testable import ReservoirPostgres

/// Deterministic random inputs (SplitMix64, fixed seeds) for the three places where bytes from outside meet the
/// driver: connection strings, the query builder, and result values from the server in binary and text form. Each
/// input must end in a value or a typed error: no crash, no trap, no secret in the error.
@Suite("Random inputs: connection strings, the query builder, decoding")
struct RandomInputTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let secret = "Zq9-secret"

    /// Pieces that connection strings are made of, including the typos around a password.
    static let pieces = [
        "host", "=", " ", "db", "port", "5432", "99999", "-1", "x", "user", "app", "password", "password:", "password ",
        secret, "'", "\\", "\"", "dbname", "sslmode", "require", "connect_timeout", "0", "3", "postgresql://",
        "postgres://", "@", ":", "/", "?", "&", "%", "%zz", "%00", "[", "]", "::1", ",", "bogus", "\n", "é", "\u{0}",
    ]

    @Test("random connection strings parse or throw invalidConfiguration, and never show the password", arguments: [
        UInt64(1), 2, 3, 4,
    ])
    func connectionStrings(seed: UInt64) {
        var generator = Generator(state: seed)
        for _ in 0..<2_500 {
            let count = Int.random(in: 1...12, using: &generator)
            let string = (0..<count).map { _ in Self.pieces.randomElement(using: &generator)! }.joined()
            do {
                let configuration = try PostgresConnection.Configuration(connectionString: string)
                // The secret may land in another field (a host named after it); only the password must not show.
                func occurrences(_ text: String) -> Int { text.components(separatedBy: Self.secret).count - 1 }
                let elsewhere = configuration.parameters.filter { $0.0 != "password" }.map { occurrences($0.1) }
                    .reduce(0, +)
                #expect(occurrences(configuration.description) <= elsewhere, "\(string.debugDescription)")
                var dumped = ""
                dump(configuration, to: &dumped)
                #expect(occurrences(dumped) <= 2 * elsewhere, "\(string.debugDescription)")  // header and child
                #expect(configuration.connectTimeout > .zero)
            } catch let error as PostgresError {
                #expect(error.code == .invalidConfiguration)
                #expect(!error.description.contains(Self.secret), "\(string.debugDescription) → \(error)")
                #expect(!error.description.contains("Zq9"), "\(string.debugDescription) → \(error)")
            } catch {
                Issue.record("untyped error \(error) for \(string.debugDescription)")
            }
        }
    }

    @Test("random interpolations bind every value once and number the placeholders, or fail typed", arguments: [
        UInt64(11), 12,
    ])
    func queryBuilder(seed: UInt64) {
        var generator = Generator(state: seed)
        let literals = ["", " ", "SELECT ", ", ", "0", "1 ", "::int4", ")", "(", "'x'", "$", "12", "a"]
        for _ in 0..<2_000 {
            let parts = Int.random(in: 0...24, using: &generator)
            var interpolation = PostgresQuery.StringInterpolation(literalCapacity: 16, interpolationCount: parts)
            var values = 0
            var digitAfterPlaceholder = false
            var lastWasValue = false
            for _ in 0..<parts {
                switch Int.random(in: 0..<5, using: &generator) {
                case 0:
                    let literal = literals.randomElement(using: &generator)!
                    if lastWasValue, let first = literal.first, first.isASCII, first.isNumber { digitAfterPlaceholder = true }
                    if !literal.isEmpty { lastWasValue = false }
                    interpolation.appendLiteral(literal)
                case 1:
                    interpolation.appendInterpolation(Int.random(in: Int.min...Int.max, using: &generator))
                    values += 1
                    lastWasValue = true
                case 2:
                    interpolation.appendInterpolation(Bool.random(using: &generator) ? "text \(values)" : "")
                    values += 1
                    lastWasValue = true
                case 3:
                    interpolation.appendInterpolation(nil as Int32?)
                    values += 1
                    lastWasValue = true
                default:
                    interpolation.appendInterpolation(identifier: "col\"\(values)")
                    lastWasValue = false
                }
            }
            let query = PostgresQuery(stringInterpolation: interpolation)
            #expect(query.bindings.count == values)
            if digitAfterPlaceholder {
                #expect(query.bindings.encodingFailure?.code == .encodingFailed)
            } else {
                #expect(query.bindings.encodingFailure == nil, "\(query.sql)")
            }
        }
    }

    /// Decodes `bytes` as `type` in `format` as every Swift type the driver knows: a value or a typed failure.
    static func decodeEverything(_ bytes: [UInt8], type: PostgresDataType, format: PostgresFormat) {
        bytes.withUnsafeBytes { buffer in
            let cell = PostgresCell(type: type, format: format, bytes: buffer)
            func attempt<T: PostgresDecodable>(_: T.Type) {
                do throws(PostgresDecodingFailure) {
                    _ = try T(postgresCell: cell)
                } catch {
                    _ = error.errorDescription  // a typed failure that describes itself
                }
            }
            attempt(Bool.self)
            attempt(Int16.self)
            attempt(Int32.self)
            attempt(Int64.self)
            attempt(Int.self)
            attempt(Float.self)
            attempt(Double.self)
            attempt(String.self)
            attempt(Data.self)
            attempt(UUID.self)
            attempt(Date.self)
            attempt(Decimal.self)
            attempt([Int].self)
            attempt([String].self)
            attempt([Int?].self)
            attempt([Double].self)
            attempt([UUID].self)
            attempt(Int?.self)
        }
    }

    static let types: [PostgresDataType] = [
        .bool, .bytea, .char, .name, .int8, .int2, .int4, .text, .oid, .json, .float4, .float8, .unknown, .boolArray,
        .int4Array, .int8Array, .textArray, .float8Array, .uuidArray, .bpchar, .varchar, .date, .time, .timestamp,
        .timestamptz, .interval, .numeric, .numericArray, .uuid, .jsonb, PostgresDataType(rawValue: 99_999),
    ]

    @Test("random server values in binary and text decode to a value or a typed failure, never a crash", arguments: [
        UInt64(21), 22, 23,
    ])
    func decoding(seed: UInt64) {
        var generator = Generator(state: seed)
        for _ in 0..<1_500 {
            let type = Self.types.randomElement(using: &generator)!
            let format: PostgresFormat = Bool.random(using: &generator) ? .binary : .text
            let length = [0, 1, 2, 4, 8, 12, 16, 20, 24, 33, 64].randomElement(using: &generator)!
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half of the inputs look like real values: an array header or numeric header with random counts.
            if length >= 20, Bool.random(using: &generator) {
                let dimensions = UInt32.random(in: 0...3, using: &generator)
                let count = Int32.random(in: -2...1_000_000, using: &generator)
                withUnsafeBytes(of: dimensions.bigEndian) { bytes.replaceSubrange(0..<4, with: $0) }
                withUnsafeBytes(of: count.bigEndian) { bytes.replaceSubrange(12..<16, with: $0) }
            }
            Self.decodeEverything(bytes, type: type, format: format)
        }
    }

    @Test("every edge length of every fixed-size type decodes or fails typed")
    func edgeLengths() {
        for type in Self.types {
            for length in 0...40 {
                Self.decodeEverything([UInt8](repeating: 0xFF, count: length), type: type, format: .binary)
                Self.decodeEverything([UInt8](repeating: 0x00, count: length), type: type, format: .binary)
                Self.decodeEverything([UInt8](repeating: 0x39, count: length), type: type, format: .text)
            }
        }
    }
}
