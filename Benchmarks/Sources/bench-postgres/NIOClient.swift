// postgres-nio's PostgresClient, at its best: 8 connections opened up front and kept, keep-alive off, the point
// select as a named prepared statement (parsed once per connection), rows decoded as they stream in.
import Foundation
import PostgresNIO

struct SelectBalance: PostgresPreparedStatement {
    static let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    typealias Row = Int32

    var aid: Int32

    func makeBindings() throws -> PostgresNIO.PostgresBindings {
        var bindings = PostgresNIO.PostgresBindings()
        bindings.append(aid)
        return bindings
    }

    func decodeRow(_ row: PostgresNIO.PostgresRow) throws -> Row {
        try row.decode(Int32.self)
    }
}

/// Drives a `PostgresClient` whose `run()` lives in a task owned by the caller.
final class NIOClientRunner: Sendable {
    let client: PostgresClient

    init(host: String, port: Int, user: String, password: String?, database: String, connections: Int) {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: .disable)
        configuration.options.minimumConnections = connections
        configuration.options.maximumConnections = connections
        configuration.options.keepAliveBehavior = nil
        client = PostgresClient(configuration: configuration)
    }

    func run() async { await client.run() }

    /// One point select; returns the balance so that the work cannot be optimised away.
    @inline(never)
    func select(aid: Int32) async throws -> Int32 {
        var balance: Int32 = 0
        for try await value in try await client.execute(SelectBalance(aid: aid)) { balance = value }
        return balance
    }
}
