import Foundation
import Logging
import Reservoir
import ReservoirPostgres
import ReservoirPostgresTestKit
import Synchronization
import Testing

/// A value from a row, a literal in raw SQL, a value the server quotes in a data exception and a password never reach
/// an error's description, `localizedDescription`, a nested pool error or a log line; what an operator needs (the
/// SQLSTATE, the constraint, the message) does.
@Suite("Server errors: no values or secrets in descriptions and logs")
struct ErrorSecrecyTests {
    /// Every text a user or a log handler sees of `error`, one entry each.
    private static func visibleTexts(of error: any Error) -> [String] {
        let nested = ResourcePoolError(
            .circuitBreakerOpen, message: "creating resources keeps failing", underlying: error)
        return [
            "\(error)", String(describing: error), error.localizedDescription,
            "\(nested)", nested.localizedDescription,
        ]
    }

    @Test(
        "a unique violation's value stays in `detail`; descriptions and log lines show SQLSTATE, constraint, message"
    )
    func uniqueViolation() async throws {
        let table = TestDatabase.uniqueName("secrecy")
        let constraint = "\(table)_email_key"
        let value = "zq-row-value-48151@example.com"
        let literal = "zq-sql-literal-62342@example.com"
        let quoted = "zq-not-a-number-91173"
        let recorder = LogRecorder()
        try await TestDatabase.withConnection(logger: recorder.logger) { connection in
            try await connection.unsafeExecuteScript(
                "CREATE TABLE \(table) (id serial PRIMARY KEY, email text CONSTRAINT \(constraint) UNIQUE)"
            )
            try await connection.execute("INSERT INTO \(identifier: table) (email) VALUES (\(value))")
            try await connection.execute(
                PostgresQuery(unsafeSQL: "INSERT INTO \(table) (email) VALUES ('\(literal)')")
            )
        }
        let configuration = try await TestDatabase.configuration()

        // The violation, raised from a before-lease hook so that the pool logs it with its `error` metadata.
        let thrown = Mutex<[PostgresError]>([])
        let hookRuns = Mutex(0)
        var poolConfiguration = ResourcePoolConfiguration(name: table)
        poolConfiguration.maximumSize = 1
        poolConfiguration.validation = .always
        let pool = try ResourcePool<PostgresConnection, ContinuousClock>(
            configuration: poolConfiguration,
            factory: ResourceFactory(
                create: { try await PostgresConnection.connect(configuration: configuration, logger: recorder.logger) },
                close: { await $0.close() }
            ),
            hooks: ResourcePoolHooks(beforeLease: { connection, _ in
                let run = hookRuns.withLock { runs in
                    runs += 1
                    return runs
                }
                let statement: PostgresQuery
                switch run {
                case 1: statement = "INSERT INTO \(identifier: table) (email) VALUES (\(value))"
                case 2: statement = PostgresQuery(unsafeSQL: "INSERT INTO \(table) (email) VALUES ('\(literal)')")
                default: return true
                }
                do {
                    try await connection.execute(statement)
                } catch let error as PostgresError {
                    thrown.withLock { $0.append(error) }
                    throw error
                }
                return true
            }),
            clock: ContinuousClock(),
            logger: recorder.logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            try await pool.withResource(timeout: .seconds(20)) { connection in
                let error = try await #require(throws: PostgresError.self) {
                    try await connection.query("SELECT \(quoted)::int4")
                }
                thrown.withLock { $0.append(error) }
            }
            group.cancelAll()
        }

        let errors = thrown.withLock { $0 }
        try #require(errors.count == 3)
        let (parameterised, raw, dataException) = (errors[0], errors[1], errors[2])
        for violation in [parameterised, raw] {
            #expect(violation.sqlState == .uniqueViolation)
            #expect(violation.constraintName == constraint)
            for text in Self.visibleTexts(of: violation) {
                #expect(text.contains("23505"), "\(text)")
                #expect(text.contains("constraint \(constraint)"), "\(text)")
                #expect(text.contains(violation.message), "\(text)")
            }
        }
        // The values were there to leak: the server sent them in DETAIL, and the statement holds the literal.
        #expect(parameterised.detail == "Key (email)=(\(value)) already exists.")
        #expect(raw.detail?.contains(literal) == true)
        #expect(raw.statement?.contains(literal) == true)
        #expect(String(reflecting: parameterised).contains(value))
        #expect(String(reflecting: raw).contains(literal))
        // The parameterised statement holds no value, so it is shown.
        #expect(parameterised.description.contains("Statement: INSERT INTO \"\(table)\" (email) VALUES ($1)"))

        #expect(dataException.sqlState == SQLState(rawValue: "22P02"))
        #expect(dataException.message.contains(quoted))
        #expect(String(reflecting: dataException).contains(quoted))
        #expect(dataException.description.contains("invalid input syntax for type integer: \"…\" (SQLSTATE 22P02"))

        let logged = recorder.entries.map { "\($0.level) \($0.message) \($0.metadata)" }
        // The pool logged both violations (the hook threw them), so the log lines were exposed to the values.
        #expect(logged.filter { $0.contains("23505") && $0.contains(constraint) }.count >= 2, "\(logged)")
        let texts = errors.flatMap(Self.visibleTexts(of:)) + logged
        for text in texts {
            #expect(!text.contains(value), "\(text)")
            #expect(!text.contains(literal), "\(text)")
            #expect(!text.contains(quoted), "\(text)")
        }
    }

    @Test(
        "a failed connect never shows the password; descriptions and log lines show 28P01 and the server's message"
    )
    func wrongPassword() async throws {
        let server = try await TestDatabase.server.value
        let password = "zq-Wrong-pw-73019"
        let recorder = LogRecorder()
        let connection = try PostgresConnection.Configuration(
            host: "127.0.0.1", port: server.connection.port, user: "app", password: password, database: "postgres"
        )
        let direct = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: connection, logger: recorder.logger)
        }
        var configuration = PostgresPool.Configuration(
            connection: connection, name: TestDatabase.uniqueName("secretpw"))
        configuration.pool.circuitBreakerThreshold = 1
        let pool = try PostgresPool(configuration: configuration, logger: recorder.logger)
        let pooled = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            let error = try await #require(throws: ResourcePoolError.self) {
                try await pool.query("SELECT 1", timeout: .seconds(20))
            }
            group.cancelAll()
            return error
        }

        #expect(pooled.code == .circuitBreakerOpen)
        for error in [direct, try #require(pooled.underlying as? PostgresError)] {
            #expect(error.code == .connectionRejected)
            #expect(error.sqlState == .invalidPassword)
            #expect(error.message.contains("password authentication failed for user \"app\""))
        }
        let logged = recorder.entries.map { "\($0.level) \($0.message) \($0.metadata)" }
        #expect(logged.contains { $0.contains("28P01") && $0.contains("password authentication failed") }, "\(logged)")
        // No connection opened, so none is announced as closed.
        #expect(!logged.contains { $0.contains("postgres connection closed") }, "\(logged)")
        for text in Self.visibleTexts(of: direct) + Self.visibleTexts(of: pooled) {
            #expect(text.contains("28P01"), "\(text)")
            #expect(text.contains("password authentication failed"), "\(text)")
        }
        let texts =
            Self.visibleTexts(of: direct) + Self.visibleTexts(of: pooled)
            + [String(reflecting: direct), String(reflecting: pooled)] + logged
        for text in texts {
            #expect(!text.contains(password), "\(text)")
        }
    }
}
