import InMemoryTracing
import ReservoirPostgres
import Reservoir
import Testing
import Tracing

@Suite("Tracing spans")
struct TracingTests {
    /// The finished spans' names and attributes, for lookups.
    struct FinishedSpan: Sendable {
        var name: String
        var attributes: SpanAttributes
        var failed: Bool
    }

    static func spans(_ tracer: InMemoryTracer) -> [FinishedSpan] {
        tracer.finishedSpans.map { FinishedSpan(name: $0.operationName, attributes: $0.attributes, failed: $0.status?.code == .error) }
    }

    @Test("an acquire span and a statement span per query, with OpenTelemetry's database attributes")
    func acquireAndStatementSpans() async throws {
        let tracer = InMemoryTracer()
        let (poolName, spans) = try await PoolTest.withPool(configure: {
            $0.pool.minimumSize = 0
            $0.pool.maximumSize = 1
            $0.connection.tracer = tracer
        }) { pool in
            tracer.clearAll()
            let secret: Int32 = 424_242
            let (one, two): (Int32, Int32) = (1, 2)
            _ = try await pool.query("SELECT \(secret)::int4 + \(one) AS next")
            _ = try await pool.query("SELECT \(secret)::int4 + \(two) AS next")
            // Before the test support's own checks add spans of their own.
            return (pool.configuration.pool.name, Self.spans(tracer))
        }
        let acquires = spans.filter { $0.name == "acquire connection" }
        #expect(acquires.count == 2)
        #expect(acquires.allSatisfy { $0.attributes["db.client.connection.pool.name"]?.toSpanAttribute() == .string(poolName) })
        #expect(acquires.allSatisfy { $0.attributes["db.client.connection.wait_time"] != nil })
        // The first acquire got a connection opened for it; the second one reused it.
        #expect(acquires.first?.attributes["reservoir.connection.new"]?.toSpanAttribute() == .bool(true))
        #expect(acquires.last?.attributes["reservoir.connection.new"]?.toSpanAttribute() == .bool(false))

        let selects = spans.filter { $0.name == "SELECT" && $0.attributes["db.query.text"] != nil }
        #expect(selects.count == 2)
        let select = try #require(selects.first)
        #expect(select.attributes["db.system.name"]?.toSpanAttribute() == .string("postgresql"))
        #expect(select.attributes["db.operation.name"]?.toSpanAttribute() == .string("SELECT"))
        #expect(select.attributes["db.query.text"]?.toSpanAttribute() == .string("SELECT $1::int4 + $2 AS next"))
        #expect(select.attributes["db.response.returned_rows"]?.toSpanAttribute() == .int64(1))
        #expect(select.attributes["db.namespace"]?.toSpanAttribute() == .string("postgres"))
        #expect(!select.failed)
        // Parameter values never reach a span.
        let everything = spans.map { "\($0.attributes)" }.joined()
        #expect(!everything.contains("424242"))
    }

    @Test("a failing statement's span carries the SQLSTATE and an error status")
    func failingStatement() async throws {
        let tracer = InMemoryTracer()
        try await PoolTest.withPool(configure: { $0.connection.tracer = tracer }) { pool in
            tracer.clearAll()
            let zero: Int32 = 0
            await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1 / \(zero)") }
        }
        let failed = try #require(Self.spans(tracer).first { $0.name == "SELECT" && $0.failed })
        #expect(failed.attributes["db.response.status_code"]?.toSpanAttribute() == .string("22012"))
        #expect(failed.attributes["error.type"]?.toSpanAttribute() == .string("22012"))
    }

    @Test("with no tracer configured or bootstrapped, connections and pools record nothing")
    func noTracerNoCost() async throws {
        try await PoolTest.withPool { pool in
            #expect(pool.isTracing == false)
            try await pool.withConnection { connection in
                #expect(connection.isTracing == false)
            }
        }
    }
}
