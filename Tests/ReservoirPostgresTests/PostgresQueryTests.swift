import Foundation
@testable import ReservoirPostgres
import Testing

@Suite("PostgresQuery")
struct PostgresQueryTests {
    @Test("interpolation numbers placeholders and binds values with their types")
    func interpolation() {
        let name = "O'Brien"
        let age: Int32? = nil
        let query: PostgresQuery = "SELECT * FROM users WHERE name = \(name) AND age = \(age) AND id = \(7)"
        #expect(query.sql == "SELECT * FROM users WHERE name = $1 AND age = $2 AND id = $3")
        #expect(query.bindings.count == 3)
        #expect(query.bindings.dataTypes == [.text, .int4, .int8])
        #expect(query.bindings.slots[1].length == -1)
        #expect(query.bindings.slots[2].length == 8)
    }

    @Test("a literal without interpolation has no bindings")
    func literal() {
        let query: PostgresQuery = "SELECT 1"
        #expect(query.sql == "SELECT 1")
        #expect(query.bindings.count == 0)
    }

    @Test("integers are encoded big-endian and text values are NUL-terminated for libpq")
    func encoding() {
        var bindings = PostgresBindings()
        bindings.append(Int32(0x0102_0304))
        bindings.append(Decimal(string: "1.5")!)
        #expect(Array(bindings.buffer.bytes[0..<4]) == [1, 2, 3, 4])
        #expect(bindings.slots[1].format == PostgresFormat.text.rawValue)
        #expect(Array(bindings.buffer.bytes[4...]) == Array("1.5".utf8) + [0])
    }
}

@Suite("Decoding without a server")
struct DecodingTests {
    private func cell<R>(_ type: PostgresDataType, _ bytes: [UInt8], _ body: (PostgresCell) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body(PostgresCell(type: type, bytes: $0)) }
    }

    @Test("binary numeric converts to exact text", arguments: [
        // ndigits, weight, sign, dscale, digits…  → text
        ([0, 2, 0, 0, 0, 0, 0, 4, 0, 12, 13, 128], "12.3456"),
        ([0, 1, 255, 255, 64, 0, 0, 4, 0, 5], "-0.0005"),
        ([0, 0, 0, 0, 0xC0, 0, 0, 0], "NaN"),
        ([0, 1, 0, 1, 0, 0, 0, 0, 0, 1], "10000"),
    ] as [([UInt8], String)])
    func numeric(bytes: [UInt8], text: String) throws {
        let decoded = try cell(.numeric, bytes) { try String(postgresCell: $0) }
        #expect(decoded == text)
    }

    @Test("a wrong type is a type mismatch and short data is an invalid value")
    func failures() {
        _ = cell(.text, [1, 2, 3, 4]) { cell in
            #expect(throws: PostgresDecodingFailure.typeMismatch) { try Int32(postgresCell: cell) }
        }
        _ = cell(.int8, [1, 2]) { cell in
            #expect(throws: PostgresDecodingFailure.self) { try Int64(postgresCell: cell) }
        }
    }
}

@Suite("Statement cache")
struct StatementCacheTests {
    @Test("a full cache evicts the least recently used statement")
    func eviction() {
        var cache = StatementCache(capacity: 2)
        let a = StatementCache.Key(sql: "a", types: [])
        let b = StatementCache.Key(sql: "b", types: [])
        let c = StatementCache.Key(sql: "c", types: [])
        guard case .miss(let nameA, nil) = cache.lookup(a) else { Issue.record("expected a miss"); return }
        cache.insert(a, name: nameA)
        guard case .miss(let nameB, nil) = cache.lookup(b) else { Issue.record("expected a miss"); return }
        cache.insert(b, name: nameB)
        guard case .hit(nameA) = cache.lookup(a) else { Issue.record("expected a hit"); return }
        guard case .miss(_, let evicted) = cache.lookup(c) else { Issue.record("expected a miss"); return }
        #expect(evicted == nameB)
        #expect(cache.count == 1)
    }

    @Test("capacity zero disables the cache")
    func disabled() {
        #expect(!StatementCache(capacity: 0).isEnabled)
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test("connection strings and URIs parse; the description hides the password")
    func parsing() throws {
        let keywords = try PostgresConnection.Configuration(connectionString: "host=db port=6543 user=app password=s3cr3t")
        #expect(keywords["host"] == "db")
        #expect(keywords["port"] == "6543")
        #expect(keywords["password"] == nil)
        #expect(!keywords.description.contains("s3cr3t"))
        let uri = try PostgresConnection.Configuration(connectionString: "postgresql://app:s3cr3t@db:6543/orders?sslmode=disable")
        #expect(uri["dbname"] == "orders")
        #expect(uri["sslmode"] == "disable")
        #expect(!uri.description.contains("s3cr3t"))
    }

    @Test("the driver's defaults: GSSAPI off, UTF-8, an application name")
    func defaults() throws {
        let configuration = try PostgresConnection.Configuration(host: "db")
        let parameters = Dictionary(configuration.libpqParameters(), uniquingKeysWith: { $1 })
        #expect(parameters["client_encoding"] == "UTF8")
        #expect(parameters["fallback_application_name"] == "reservoir")
        #expect(configuration.connectTimeout == .seconds(10))
        #expect(configuration.statementCacheCapacity == 256)
    }

    @Test("libpq's parse errors lose the password", arguments: [
        "password=hunter2 nonsense",
        "host=x password='hunter2",
        "postgresql://u:hunter2@h/db?bad=1",
    ])
    func redaction(connectionString: String) {
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: connectionString)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.description.contains("hunter2") == false)
    }
}
