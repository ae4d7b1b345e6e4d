import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import OrdersService
import ReservoirPostgresTestKit

/// Runs an ``OrdersService`` on a free loopback port against a fresh database of the process's shared throwaway
/// server, and shuts it down gracefully afterwards, also when the body throws.
struct OrdersServiceHarness {
    /// A running service.
    struct Running: Sendable {
        let service: OrdersService
        let port: Int
        let database: PostgresTestServer.Database

        /// Sends one request on a connection of its own.
        func request(
            _ uri: String,
            method: HTTPRequest.Method = .get,
            headers: HTTPFields = [:],
            body: String? = nil
        ) async throws -> TestClient.Response {
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                try await client.execute(
                    TestClient.Request(uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
                )
            }
        }

        /// Posts a JSON order body (valid or not) to `POST /orders`.
        func postOrder(_ body: String) async throws -> TestClient.Response {
            try await request("/orders", method: .post, headers: [.contentType: "application/json"], body: body)
        }
    }

    struct ServiceExitedBeforeListening: Error {}

    /// Starts the service, runs `body`, then shuts it down gracefully and waits for `run()` to return; then runs
    /// `afterShutdown` with the database (still there). With `endsByCancellation`, the service's task is cancelled
    /// instead (for a body that started the graceful shutdown itself and must not wait out its drain).
    static func withService(
        _ configure: (inout OrdersConfiguration) -> Void = { _ in },
        endsByCancellation: Bool = false,
        _ body: (Running) async throws -> Void,
        afterShutdown: (PostgresTestServer.Database) async throws -> Void = { _ in }
    ) async throws {
        let server = try await PostgresTestServer.shared
        try await server.withDatabase { database in
            var configuration = OrdersConfiguration()
            configuration.port = 0
            configuration.poolSize = 4
            configure(&configuration)
            let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
            let service = try OrdersService(
                configuration: configuration,
                databaseURL: database.connectionString,
                logger: Logger(label: "orders-test"),
                onServerRunning: { port in
                    portContinuation.yield(port)
                    portContinuation.finish()
                }
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { portContinuation.finish() }
                    try await service.run()
                }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else {
                    // run() returned or threw before the server listened: surface its error.
                    try await group.waitForAll()
                    throw ServiceExitedBeforeListening()
                }
                do {
                    try await body(Running(service: service, port: port, database: database))
                } catch {
                    await service.triggerGracefulShutdown()
                    try? await group.waitForAll()
                    throw error
                }
                if endsByCancellation {
                    group.cancelAll()
                    try? await group.waitForAll()
                } else {
                    await service.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
            try await afterShutdown(database)
        }
    }
}

extension TestClient.Response {
    /// The body as text.
    var text: String { body.map { String(buffer: $0) } ?? "" }

    /// The body decoded from JSON.
    func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

/// Parses Prometheus' text format into `series → value`, skipping comments.
func prometheusSeries(_ text: String) -> [String: Double] {
    var series: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
            continue
        }
        series[String(line[..<space])] = value
    }
    return series
}

extension Dictionary where Key == String, Value == Double {
    /// The value of the one series named `name` whose labels contain every fragment in `labels`.
    func value(_ name: String, _ labels: String...) -> Double? {
        first { key, _ in
            (key == name || key.hasPrefix(name + "{")) && labels.allSatisfy { key.contains($0) }
        }?.value
    }
}
