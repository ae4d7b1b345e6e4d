import Logging
import ReservoirPostgres

let connectionString = "postgresql://app@localhost/app"  // or read it from your environment
var configuration = PostgresPool.Configuration(
    connection: try .init(connectionString: connectionString),
    name: "app"
)
configuration.pool.maximumSize = 8
configuration.pool.acquireTimeout = .seconds(2)
configuration.pool.leakThreshold = .seconds(30)
let pool = try PostgresPool(configuration: configuration, logger: Logger(label: "app.db"))

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await pool.run() }  // or add the pool to a ServiceGroup

    let id: Int32 = 42
    try await pool.withTransaction { transaction in
        try await transaction.execute("UPDATE users SET visits = visits + 1 WHERE id = \(id)")
    }
    let rows = try await pool.query("SELECT name, visits FROM users WHERE id = \(id)")  // $1, never spliced
    for row in rows {
        let (name, visits) = try row.decode((String, Int32).self)
        print("\(name) visited \(visits) times")
    }

    pool.triggerGracefulShutdown()
    try await group.waitForAll()
}
