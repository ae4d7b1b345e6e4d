// Reservoir's PostgresPool: at most 8 connections, the point select through the pool's query API (prepared once
// per connection by the driver's statement cache).
import Logging
import ReservoirPostgres
import Reservoir

final class OurPoolRunner: Sendable {
    let pool: PostgresPool

    init(connectionString: String, connections: Int) throws {
        var configuration = PostgresPool.Configuration(
            connection: try .init(connectionString: connectionString), name: "bench")
        configuration.pool.minimumSize = connections
        configuration.pool.maximumSize = connections
        configuration.pool.maximumConcurrentCreations = connections
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        pool = try PostgresPool(configuration: configuration, logger: logger)
    }

    func run() async throws { try await pool.run() }

    func shutdown() { pool.triggerGracefulShutdown() }

    @inline(never)
    func select(aid: Int32) async throws -> Int32 {
        let rows = try await pool.query("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)")
        return try rows.singleValue(Int32.self) ?? 0
    }

    /// Ten point selects in one round trip (pipeline mode), one leased connection.
    @inline(never)
    func selectBatch(aids: [Int32], mode: PostgresPipelineMode) async throws -> Int32 {
        let queries: [PostgresQuery] = aids.map { "SELECT abalance FROM pgbench_accounts WHERE aid = \($0)" }
        var sum: Int32 = 0
        for result in try await pool.pipeline(queries, mode: mode) {
            sum &+= try result.get().singleValue(Int32.self) ?? 0
        }
        return sum
    }

    /// pgbench's TPC-B-like transaction (`-b tpcb-like`): five statements between BEGIN and COMMIT, through
    /// `pool.withTransaction` (whose body runs on the connection's thread), or, with `unpinned`, through
    /// `pool.withConnection` and the connection's `withTransaction` from a task on the cooperative pool, for contrast.
    @inline(never)
    func tpcb(_ random: inout TPCBRandom, unpinned: Bool) async throws -> Int32 {
        let (aid, bid, tid, delta) = random.next()
        if unpinned {
            return try await pool.withConnection { connection in
                try await connection.withTransaction { transaction in
                    try await Self.tpcbBody(transaction, aid: aid, bid: bid, tid: tid, delta: delta)
                }
            }
        }
        return try await pool.withTransaction { transaction in
            try await Self.tpcbBody(transaction, aid: aid, bid: bid, tid: tid, delta: delta)
        }
    }

    private static func tpcbBody(
        _ transaction: PostgresTransaction, aid: Int32, bid: Int32, tid: Int32, delta: Int32
    ) async throws -> Int32 {
        try await transaction.execute(
            "UPDATE pgbench_accounts SET abalance = abalance + \(delta) WHERE aid = \(aid)")
        let balance = try await transaction.query("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)")
            .singleValue(Int32.self) ?? 0
        try await transaction.execute("UPDATE pgbench_tellers SET tbalance = tbalance + \(delta) WHERE tid = \(tid)")
        try await transaction.execute("UPDATE pgbench_branches SET bbalance = bbalance + \(delta) WHERE bid = \(bid)")
        try await transaction.execute(
            """
            INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
            VALUES (\(tid), \(bid), \(aid), \(delta), CURRENT_TIMESTAMP)
            """)
        return balance
    }
}

/// The random draws of pgbench's TPC-B-like script at scale 10: an account, a branch, a teller and a delta.
struct TPCBRandom {
    var state: UInt64

    private mutating func step() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    mutating func next() -> (aid: Int32, bid: Int32, tid: Int32, delta: Int32) {
        let aid = Int32(truncatingIfNeeded: step() % 1_000_000) + 1
        let bid = Int32(truncatingIfNeeded: step() % 10) + 1
        let tid = Int32(truncatingIfNeeded: step() % 100) + 1
        let delta = Int32(truncatingIfNeeded: step() % 10_001) - 5000
        return (aid, bid, tid, delta)
    }
}
