import ReservoirPostgres
import Testing

@Suite("Cancellation, timeouts and broken connections")
struct CancellationTests {
    @Test("cancelling a task running pg_sleep(10) returns in well under a second and keeps the connection")
    func cancelSleep() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let observer = try await TestDatabase.connect()
            let task = Task { try await connection.query("SELECT pg_sleep(10)") }
            try await waitUntilRunning("pg_sleep(10)", pid: connection.backendProcessID, observer: observer)
            let clock = ContinuousClock()
            let start = clock.now
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(clock.now - start < .milliseconds(900))
            #expect(connection.transactionStatus == .idle)
            #expect(try await connection.query("SELECT 7").singleValue(Int32.self) == 7)
            await observer.close()
        }
    }

    @Test("a task cancelled before it runs a statement sends nothing and throws CancellationError")
    func cancelledBeforeStart() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await connection.query("SELECT 1")
            }
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await connection.query("SELECT 2").singleValue(Int32.self) == 2)
        }
    }

    @Test("a cancelled task waiting for a busy connection leaves the queue")
    func cancelWhileQueued() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let observer = try await TestDatabase.connect()
            let sleeper = Task { try await connection.query("SELECT pg_sleep(10)") }
            try await waitUntilRunning("pg_sleep(10)", pid: connection.backendProcessID, observer: observer)
            let queued = Task { try await connection.query("SELECT 1") }
            queued.cancel()
            await #expect(throws: CancellationError.self) { try await queued.value }
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            #expect(try await connection.query("SELECT 3").singleValue(Int32.self) == 3)
            await observer.close()
        }
    }

    @Test("statement_timeout surfaces as queryCanceled and the connection stays usable")
    func statementTimeout() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            try await connection.unsafeExecuteScript("SET statement_timeout = '100ms'")
            let error = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT pg_sleep(5)")
            }
            #expect(error.sqlState == .queryCanceled)
            #expect(error.message.contains("statement timeout"))
            #expect(try await connection.query("SELECT 4").singleValue(Int32.self) == 4)
        }
    }

    @Test("a backend killed while idle gives a connection error on the next statement, not a hang")
    func terminatedWhileIdle() async throws {
        let connection = try await TestDatabase.connect()
        let killer = try await TestDatabase.connect()
        try await killer.query("SELECT pg_terminate_backend(\(connection.backendProcessID))")
        let error = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error.code == .connectionClosed)
        #expect(!connection.isAlive())
        #expect(connection.isClosed)
        #expect(connection.transactionStatus == .unknown)
        // Later statements fail at once with the same kind of error.
        let again = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(again.code == .connectionClosed)
        await connection.close()
        await killer.close()
    }

    @Test("a backend killed during a statement fails that statement with a connection error")
    func terminatedWhileBusy() async throws {
        let connection = try await TestDatabase.connect()
        let killer = try await TestDatabase.connect()
        let task = Task { try await connection.query("SELECT pg_sleep(10)") }
        try await waitUntilRunning("pg_sleep(10)", pid: connection.backendProcessID, observer: killer)
        try await killer.query("SELECT pg_terminate_backend(\(connection.backendProcessID))")
        let error = try await #require(throws: PostgresError.self) { try await task.value }
        #expect(error.code == .connectionClosed)
        #expect(error.sqlState == .adminShutdown)
        await connection.close()
        await killer.close()
    }

    @Test("an idle connection notices its termination without a statement")
    func livenessCheck() async throws {
        let connection = try await TestDatabase.connect()
        let killer = try await TestDatabase.connect()
        #expect(connection.isAlive())
        try await killer.query("SELECT pg_terminate_backend(\(connection.backendProcessID))")
        // The backend has exited once pg_stat_activity no longer lists it.
        for _ in 0..<10_000 {
            let rows = try await killer.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(connection.backendProcessID)")
            if try rows.singleValue(Int.self) == 0 { break }
        }
        var alive = true
        for _ in 0..<10_000 where alive {
            alive = connection.isAlive()
            if alive { try await killer.query("SELECT 1") }
        }
        #expect(!alive)
        await connection.close()
        await killer.close()
    }
}
