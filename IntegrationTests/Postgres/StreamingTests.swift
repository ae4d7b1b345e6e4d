@testable import ReservoirPostgres
import Testing

@Suite("Streaming rows")
struct StreamingTests {
    @Test("a million rows stream with a bounded buffer")
    func millionRows() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let sequence = connection.stream("SELECT g, 'row ' || g FROM (SELECT generate_series(1, \(1_000_000)) AS g) AS s", bufferSize: 256)
            var iterator = sequence.makeAsyncIterator()
            var count = 0
            var sum = 0
            while let row = try await iterator.next() {
                let (value, label) = try row.decode((Int, String).self)
                count += 1
                sum += Int(value)
                if count == 1 { #expect(label == "row 1") }
            }
            #expect(count == 1_000_000)
            #expect(sum == 500_000_500_000)
            let maximum = connection.core.lock.withLock { iterator.handle.state.maximumBufferedRows }
            #expect(maximum <= 256)
            #expect(connection.transactionStatus == .idle)
        }
    }

    @Test("stopping early cancels the statement and the connection serves the next one")
    func earlyStop() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            var seen = 0
            for try await row in connection.stream("SELECT generate_series(1, \(50_000_000)) AS g", bufferSize: 64) {
                seen += 1
                #expect(try row.decode(Int.self, column: 0) == seen)
                if seen == 10 { break }
            }
            #expect(seen == 10)
            let clock = ContinuousClock()
            let start = clock.now
            #expect(try await connection.query("SELECT 5").singleValue(Int32.self) == 5)
            #expect(clock.now - start < .seconds(5))
            #expect(connection.transactionStatus == .idle)
        }
    }

    @Test("an error part-way through a stream is thrown after the rows before it")
    func errorMidway() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            var values: [Int32] = []
            let error = try await #require(throws: PostgresError.self) {
                for try await row in connection.stream("SELECT 10 / (3 - g) FROM generate_series(1, 5) AS g") {
                    values.append(try row.decode(Int32.self, column: 0))
                }
            }
            #expect(error.sqlState == .divisionByZero)
            #expect(values == [5, 10])
            #expect(try await connection.query("SELECT 1").singleValue(Int32.self) == 1)
        }
    }

    @Test("cancelling the consuming task stops the stream with CancellationError")
    func cancelConsumer() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let (firstRow, firstRowContinuation) = AsyncStream<Void>.makeStream()
            let task = Task {
                var count = 0
                for try await _ in connection.stream("SELECT generate_series(1, \(50_000_000)) AS g") {
                    count += 1
                    if count == 1 { firstRowContinuation.yield() }
                }
                return count
            }
            for await _ in firstRow { break }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await connection.query("SELECT 6").singleValue(Int32.self) == 6)
        }
    }

    @Test("a cancelled slow consumer stops within one buffer's worth of rows")
    func cancelledSlowConsumerStops() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let bufferSize = 256
            let afterCancel = try await Task {
                var count = 0
                var seenAfterCancel = 0
                do {
                    let rows = connection.stream("SELECT generate_series(1, \(2_000_000)) AS g", bufferSize: bufferSize)
                    for try await _ in rows {
                        count += 1
                        if Task.isCancelled { seenAfterCancel += 1 }
                        // The task cancels itself part-way through a buffer; before the fix the rows already read
                        // ahead kept coming (172,729 in 1.5 s in the report that found it).
                        if count == 1_000 { withUnsafeCurrentTask { $0?.cancel() } }
                    }
                    Issue.record("the stream ended without CancellationError after \(count) rows")
                } catch is CancellationError {}
                return seenAfterCancel
            }.value
            #expect(afterCancel <= bufferSize + 1)
            #expect(try await connection.query("SELECT 7").singleValue(Int32.self) == 7)
        }
    }

    @Test("a pipeline right after a stream is not affected by single-row mode")
    func pipelineAfterStream() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            for try await _ in connection.stream("SELECT generate_series(1, 3)") {}
            let results = try await connection.pipeline(["SELECT generate_series(1, 3)", "SELECT 4"])
            #expect(try results[0].get().count == 3)
            #expect(try results[1].get().singleValue(Int32.self) == 4)
        }
    }
}
