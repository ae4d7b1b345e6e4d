import Foundation
import Logging
import PostgresPool

/// The server the integration tests run against.
enum TestDatabase {
    static func configuration() throws -> PostgresConnection.Configuration {
        let string = ProcessInfo.processInfo.environment["RESERVOIR_TEST_PG"]
            ?? "host=/tmp/pgdev port=54329 user=postgres dbname=postgres"
        return try PostgresConnection.Configuration(connectionString: string)
    }

    static func connect(logger: Logger = Logger(label: "test")) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration(), logger: logger)
    }

    /// Runs `body` with a fresh connection and closes it afterwards, also when `body` throws.
    static func withConnection<R>(_ body: (PostgresConnection) async throws -> R) async throws -> R {
        let connection = try await connect()
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}
