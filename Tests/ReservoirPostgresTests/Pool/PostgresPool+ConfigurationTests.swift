import Reservoir
import Testing

@testable import ReservoirPostgres

@Suite("PostgresPool configuration and error translation")
struct PostgresPoolConfigurationTests {
    func configuration() throws -> PostgresPool.Configuration {
        try PostgresPool.Configuration(connection: .init(host: "127.0.0.1", port: 1, user: "app"), name: "orders")
    }

    @Test("the application name defaults to the pool name and reaches the connection string")
    func applicationNameDefaultsToPoolName() throws {
        let connection = try configuration().connectionConfiguration()
        #expect(connection["application_name"] == "orders")
    }

    @Test("the default statement timeout travels as a connection option, rounded up to whole milliseconds")
    func statementTimeoutBecomesAnOption() throws {
        var configuration = try configuration()
        configuration.connection = try .init(connectionString: "host=127.0.0.1 options='-c search_path=app'")
        configuration.statementTimeout = .microseconds(2500)
        let connection = try configuration.connectionConfiguration()
        #expect(connection["options"] == "-c search_path=app -c statement_timeout=3")
    }

    @Test("milliseconds never round a positive duration down to zero", arguments: [
        (Duration.nanoseconds(1), Int64(1)), (.milliseconds(1), 1), (.seconds(2), 2000), (.milliseconds(1500), 1500),
    ])
    func millisecondsRoundUp(duration: Duration, expected: Int64) {
        #expect(PostgresPool.milliseconds(duration) == expected)
    }

    @Test("invalid PostgreSQL settings are rejected naming the field", arguments: [
        "applicationName", "statementTimeout", "pool.validation", "cancellationGracePeriod",
    ])
    func invalidSettingsNameTheField(field: String) throws {
        var configuration = try configuration()
        switch field {
        case "applicationName": configuration.applicationName = String(repeating: "x", count: 64)
        case "statementTimeout": configuration.statementTimeout = .zero
        case "pool.validation": configuration.pool.validation = .ifIdle(atLeast: .seconds(-1))
        default: configuration.cancellationGracePeriod = .seconds(-1)
        }
        let error = #expect(throws: PostgresError.self) { try PostgresPool(configuration: configuration) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.field == field)
        #expect(error?.message.contains("PostgresPool.Configuration.\(field)") == true)
    }

    @Test("an invalid generic pool setting is a PostgresError too, naming the field under pool.")
    func invalidPoolSettingIsAPostgresError() throws {
        var configuration = try configuration()
        configuration.pool.maximumSize = 0
        let error = #expect(throws: PostgresError.self) { try PostgresPool(configuration: configuration) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.field == "pool.maximumSize")
        #expect(error?.message.hasPrefix("PostgresPool.Configuration.pool.maximumSize must be at least 1") == true)
        #expect((error?.underlying as? ResourcePoolError)?.field == "maximumSize")
    }

    @Test("an invalid connection setting names its field under connection.")
    func invalidConnectionSettingNamesConnection() throws {
        var configuration = try configuration()
        configuration.connection.connectTimeout = .zero
        let error = #expect(throws: PostgresError.self) { try PostgresPool(configuration: configuration) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.field == "connection.connectTimeout")
    }

    @Test("a 57014 becomes a statementTimeout error by its SQLSTATE, whatever the message's language")
    func statementTimeoutIsTranslated() {
        var error = PostgresError(.server, message: "Abbruch der Anweisung wegen Zeitüberschreitung")
        error.sqlState = .queryCanceled
        let translated = error.asStatementTimeout()
        #expect(translated?.code == .statementTimeout)
        #expect(translated?.sqlState == .queryCanceled)
        #expect(translated?.asStatementTimeout() == nil)  // once
    }

    @Test("other server errors are not statement timeouts")
    func otherErrorsAreNotTimeouts() {
        var error = PostgresError(.server, message: "canceling statement due to statement timeout")
        error.sqlState = .serializationFailure
        #expect(error.asStatementTimeout() == nil)
    }

    @Test("the connection knows a statement_timeout is in effect from the options the pool sets")
    func statementTimeoutInEffect() throws {
        var configuration = PostgresPool.Configuration(connection: try .init(connectionString: "host=/tmp"))
        #expect(try !configuration.connectionConfiguration().statementTimeoutInEffect)
        configuration.statementTimeout = .seconds(2)
        #expect(try configuration.connectionConfiguration().statementTimeoutInEffect)
        let zero = try PostgresConnection.Configuration(connectionString: "options='-c statement_timeout=0'")
        #expect(!zero.statementTimeoutInEffect)
    }

    @Test("connection loss and server shutdown codes are fatal; other server errors are not")
    func fatalErrors() {
        func server(_ state: SQLState) -> PostgresError {
            var error = PostgresError(.server, message: "x")
            error.sqlState = state
            return error
        }
        #expect(PostgresPool.isFatal(PostgresError(.connectionClosed, message: "lost")))
        #expect(PostgresPool.isFatal(server(.adminShutdown)))
        #expect(PostgresPool.isFatal(server(.crashShutdown)))
        #expect(PostgresPool.isFatal(server(.cannotConnectNow)))
        #expect(!PostgresPool.isFatal(server(.uniqueViolation)))
        #expect(!PostgresPool.isFatal(CancellationError()))
    }
}
