import InMemoryTracing
import ReservoirPostgres
import Reservoir
import Testing
import Tracing

/// Nothing secret in any output: statement text with literal values never reaches a span.
@Suite("Reliability: secrets in spans")
struct SecretOutputTests {
    @Test("raw SQL with literal values and pipelines of it are not recorded as db.query.text; parameterised text is")
    func rawTextNotRecorded() async throws {
        let tracer = InMemoryTracer()
        try await PoolTest.withPool(configure: {
            $0.pool.maximumSize = 1
            $0.connection.tracer = tracer
        }) { pool in
            tracer.clearAll()
            _ = try await pool.query(PostgresQuery(unsafeSQL: "SELECT 'hunter2-literal' AS secret"))
            _ = try await pool.pipeline([
                PostgresQuery(unsafeSQL: "SELECT 'pipeline-literal-1'"), "SELECT 7770777",
            ])
            let id: Int32 = 5
            _ = try await pool.query("SELECT \(id)::int4 AS id")
            let recorded = tracer.finishedSpans.compactMap { span -> String? in
                guard case .string(let text)? = span.attributes["db.query.text"]?.toSpanAttribute() else { return nil }
                return text
            }
            #expect(recorded == ["SELECT $1::int4 AS id"])
            let everything = tracer.finishedSpans.map { "\($0.attributes)" }.joined()
            #expect(!everything.contains("hunter2-literal"))
            #expect(!everything.contains("pipeline-literal-1"))
            #expect(!everything.contains("7770777"))
        }
    }
}
