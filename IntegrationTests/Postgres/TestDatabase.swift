import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit

/// One throwaway server shared by the driver's integration tests; each test uses its own connections and tables.
///
/// Started on first use and never stopped explicitly: its watchdog stops it and deletes its folder when the test
/// process exits.
enum TestDatabase {
    static let appPassword = "app-Secret-pw-7731"

    static let server = Task {
        var configuration = PostgresTestServer.Configuration()
        configuration.roles = [PostgresTestServer.Role(name: "app", password: appPassword, isSuperuser: true)]
        // Every suite of the integration target runs in parallel against this one server, several with pools of
        // their own (the shared rate limit, PgBouncer, the advise measurement): the default 100 slots run out.
        configuration.settings["max_connections"] = "400"
        return try await PostgresTestServer.start(configuration)
    }

    /// The configuration for a Unix-socket connection as the superuser.
    static func configuration() async throws -> PostgresConnection.Configuration {
        let server = try await server.value
        return try PostgresConnection.Configuration(connectionString: server.connection.unixSocketConnectionString)
    }

    static func connect(logger: Logger = Logger(label: "test")) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration(), logger: logger)
    }

    /// Runs `body` with a fresh connection and closes it afterwards, also when `body` throws.
    static func withConnection<R>(
        configure: (inout PostgresConnection.Configuration) -> Void = { _ in },
        logger: Logger = Logger(label: "test"),
        _ body: (PostgresConnection) async throws -> R
    ) async throws -> R {
        var configuration = try await configuration()
        configure(&configuration)
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// A table name unique to the calling test.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
    }
}
