// The orders service as a program: reads its settings from the environment (see OrdersConfiguration), and without a
// database URL starts a throwaway PostgreSQL for the session. Stops gracefully on SIGTERM or SIGINT (Ctrl-C).
//
//     swift run --package-path Examples orders-service
//     curl -s -XPOST localhost:8080/orders -d '{"customer":"ada","item":"item-7","quantity":2}'

import Foundation
import Logging
import OrdersService
import ReservoirPostgres
import ReservoirPostgresTestKit
import UnixSignals

/// Exits with a one-line message on standard error; no stack trace, no secret.
func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("orders-service: \(message)\n".utf8))
    exit(status)
}

let environment = ProcessInfo.processInfo.environment
let logLevel = environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = logLevel
    return handler
}
let logger = Logger(label: "orders")

let configuration: OrdersConfiguration
do {
    configuration = try OrdersConfiguration(environment: environment)
} catch {
    fail("invalid configuration: \(error)", status: 2)
}
logger.info("Starting", metadata: ["configuration": "\(configuration)"])

/// Builds the service on `databaseURL` and runs it until a signal stops it.
func serve(databaseURL: String) async throws {
    let service = try OrdersService(
        configuration: configuration,
        databaseURL: databaseURL,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger,
        onServerRunning: { port in
            logger.info("Listening", metadata: ["address": "http://\(configuration.host):\(port)"])
        }
    )
    // The pool's configuration describes itself with the password redacted.
    logger.info("Database", metadata: ["connection": "\(service.pool.configuration.connection)"])
    try await service.run()
}

do {
    if let databaseURL = configuration.databaseURL {
        try await serve(databaseURL: databaseURL)
    } else {
        logger.info("No RESERVOIR_DATABASE_URL or DATABASE_URL: starting a throwaway PostgreSQL server")
        var serverConfiguration = PostgresTestServer.Configuration()
        serverConfiguration.settings["max_connections"] = "\(max(100, configuration.poolSize * 2 + 10))"
        try await PostgresTestServer.withServer(serverConfiguration) { server in
            try await serve(databaseURL: server.connection.unixSocketConnectionString)
        }
    }
    logger.info("Stopped")
} catch let error as OrdersConfigurationError {
    fail("invalid configuration: \(error)", status: 2)
} catch let error as PostgresError where error.code == .invalidConfiguration {
    fail("invalid database configuration: \(error)", status: 2)
} catch {
    fail("\(error)", status: 1)
}
