import Testing

@testable import ReservoirPostgres

@Suite("PostgresPool's PgBouncer modes")
struct PostgresPoolPgBouncerTests {
    func configuration(_ mode: PostgresPool.PgBouncerMode?) throws -> PostgresPool.Configuration {
        var configuration = try PostgresPool.Configuration(
            connection: .init(host: "127.0.0.1", port: 6432, user: "app"), name: "orders")
        configuration.pgbouncer = mode
        return configuration
    }

    func expectInvalid(_ configuration: PostgresPool.Configuration, field: String) {
        #expect {
            _ = try configuration.connectionConfiguration()
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .invalidConfiguration && error.message.hasPrefix("PostgresPool.Configuration.\(field) ")
        }
    }

    @Test("transaction pooling turns the statement cache off")
    func transactionPoolingDisablesTheCache() throws {
        #expect(try configuration(.transactionPooling).connectionConfiguration().statementCacheCapacity == 0)
    }

    @Test("session pooling and direct connections keep the statement cache")
    func sessionPoolingKeepsTheCache() throws {
        #expect(try configuration(.sessionPooling).connectionConfiguration().statementCacheCapacity == 256)
        #expect(try configuration(nil).connectionConfiguration().statementCacheCapacity == 256)
    }

    @Test("a session reset is rejected in transaction pooling, allowed in session pooling", arguments: [
        PostgresPool.SessionReset.clean, .discardAll,
    ])
    func sessionResetInTransactionPooling(reset: PostgresPool.SessionReset) throws {
        var transaction = try configuration(.transactionPooling)
        transaction.sessionReset = reset
        expectInvalid(transaction, field: "sessionReset")
        var session = try configuration(.sessionPooling)
        session.sessionReset = reset
        _ = try session.connectionConfiguration()
    }

    @Test("a default statement timeout is rejected behind PgBouncer: it travels as the options startup parameter",
        arguments: [PostgresPool.PgBouncerMode.transactionPooling, .sessionPooling])
    func statementTimeoutRejected(mode: PostgresPool.PgBouncerMode) throws {
        var configuration = try configuration(mode)
        configuration.statementTimeout = .seconds(5)
        expectInvalid(configuration, field: "statementTimeout")
        configuration.statementTimeout = nil
        configuration.connection = try .init(connectionString: "host=127.0.0.1 options='-c work_mem=64MB'")
        expectInvalid(configuration, field: "connection")
    }
}
