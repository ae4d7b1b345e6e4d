import Foundation
import Reservoir
import ReservoirPostgres
import ReservoirPostgresTestKit
import ReservoirTestKit
import Synchronization
import Testing

/// Transfers, reads and streams through one pool while tasks are cancelled at random points and the pool's backends
/// are terminated under it: what each caller is told must match what the server kept.
@Suite("PostgresPool under random cancels and backend kills", .timeLimit(.minutes(3)))
struct PoolChaosTests {
    /// How a transfer ended, as its caller saw it.
    enum Outcome: Sendable {
        /// It returned normally: it must be in the table.
        case committed
        /// It threw an error that says nothing was committed: it must not be in the table.
        case notCommitted(String)
        /// It threw an error that leaves the outcome open (`commitOutcomeUnknown`; a lost connection under an
        /// implicit transaction): it may be in the table or not.
        case unknown(String)
    }

    final class Record: Sendable {
        struct State {
            var transfers: [Int64: Outcome] = [:]
            var reads = 0
            var streams = 0
            var cancelsRequested = 0
            var cancelled = 0
            /// The backends the killer terminated.
            var killed: [Int32] = []
            var inconsistentSums: [Int64] = []
            var unexpected: [String] = []
        }
        let state = Mutex(State())
    }

    static let accounts = 20
    static let initialBalance: Int64 = 1_000
    static let workers = 12
    static let operationsPerWorker = 50
    /// A backend of the pool is terminated after every this many finished operations.
    static let operationsPerKill = 15

    /// Sorts an error by what it says about a transfer's commit. `implicitTransaction`: the transfer was one pipeline
    /// in one implicit transaction, whose outcome a lost connection leaves open.
    static func classify(_ error: any Error, implicitTransaction: Bool) -> Outcome? {
        switch error {
        case is CancellationError:
            return .notCommitted("cancelled")
        case let error as ResourcePoolError:
            return .notCommitted("pool: \(error.code)")
        case let error as PostgresError:
            if error.code == .commitOutcomeUnknown { return .unknown("commitOutcomeUnknown") }
            if implicitTransaction, error.code != .server { return .unknown("\(error.code)") }
            return .notCommitted("\(error.code) \(error.sqlState?.rawValue ?? "")")
        default:
            return nil
        }
    }

    @Test(
        "money is kept, a transfer that returned is committed and one that failed is not (unless its outcome is unknown), no session is left in a transaction, and no lease is lost"
    )
    func transfersUnderCancelsAndKills() async throws {
        // The seed in the log gives a failing run's choices (operations, amounts, where each task is cancelled); the
        // interleaving with the server and the kills is the machine's.
        let seed = UInt64.random(in: 1...UInt64.max)
        print("pool_chaos seed=\(seed)")
        let record = Record()
        let metrics = RecordingMetricsFactory()
        try await PoolTest.withPool(
            configure: { configuration in configuration.pool.maximumSize = 6 }, metrics: metrics
        ) { pool in
            let accounts = TestDatabase.uniqueName("chaos_accounts")
            let transfers = TestDatabase.uniqueName("chaos_transfers")
            try await pool.withConnection { connection in
                try await connection.unsafeExecuteScript(
                    """
                    CREATE TABLE \(accounts) (id int4 PRIMARY KEY, balance int8 NOT NULL);
                    CREATE TABLE \(transfers) (id int8 PRIMARY KEY, source int4, target int4, amount int8);
                    INSERT INTO \(accounts) SELECT g, \(Self.initialBalance) FROM generate_series(1, \(Self.accounts)) g;
                    """
                )
            }
            let total = Int64(Self.accounts) * Self.initialBalance
            let (finished, finishedContinuation) = AsyncStream<Void>.makeStream()

            try await withThrowingTaskGroup(of: Void.self) { group in
                // The killer: after every few finished operations, terminates one of the pool's backends, whatever
                // it is doing (idle, in a statement, in a transaction, in COMMIT).
                group.addTask {
                    try await TestDatabase.withConnection { admin in
                        var count = 0
                        for await _ in finished {
                            count += 1
                            guard count % Self.operationsPerKill == 0 else { continue }
                            let killed = try await admin.query(
                                """
                                SELECT pid FROM (
                                    SELECT pid FROM pg_stat_activity
                                    WHERE application_name = \(pool.configuration.applicationName)
                                    ORDER BY random() LIMIT 1) AS victim
                                WHERE pg_terminate_backend(pid)
                                """
                            ).map { try $0.decode(Int32.self, column: 0) }
                            record.state.withLock { $0.killed += killed }
                        }
                    }
                }
                await withTaskGroup(of: Void.self) { workers in
                    for worker in 0..<Self.workers {
                        workers.addTask {
                            var random = SeededRandomNumberGenerator(seed: seed &+ UInt64(worker) &* 0x1000_0000_01B3)
                            for index in 0..<Self.operationsPerWorker {
                                let id = Int64(worker) * 1_000_000 + Int64(index)
                                await Self.runOne(
                                    id: id, pool: pool, accounts: accounts, transfers: transfers, total: total,
                                    random: &random, record: record)
                                finishedContinuation.yield()
                            }
                        }
                    }
                }
                finishedContinuation.finish()
                try await group.waitForAll()
            }

            // A backend killed at the very end may still sit idle in the pool: once the server has seen every killed
            // backend exit, the pool sees it too when it hands that connection out (as a lease after a kill does).
            let killed = record.state.withLock { $0.killed }
            try await PoolTest.waitOnServer(
                "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(\(killed))")

            // What the server kept, against what the callers were told.
            let sum = try await pool.query("SELECT sum(balance)::int8 FROM \(identifier: accounts)").singleValue(
                Int64.self)
            #expect(sum == total)
            let kept = Set(
                try await pool.query("SELECT id FROM \(identifier: transfers)").map {
                    try $0.decode(Int64.self, column: 0)
                })
            let state = record.state.withLock { $0 }
            for (id, outcome) in state.transfers {
                switch outcome {
                case .committed:
                    #expect(kept.contains(id), "transfer \(id) returned normally but is not in the table")
                case .notCommitted(let why):
                    #expect(!kept.contains(id), "transfer \(id) failed (\(why)) but was committed")
                case .unknown:
                    break
                }
            }
            #expect(kept.isSubset(of: Set(state.transfers.keys)))
            #expect(state.inconsistentSums.isEmpty, "a read saw a sum other than \(total): \(state.inconsistentSums)")
            #expect(state.unexpected.isEmpty, "\(state.unexpected)")
            // Nothing left open on the server by any of this.
            let inTransaction = try await pool.query(
                """
                SELECT count(*)::int4 FROM pg_stat_activity
                WHERE application_name = \(pool.configuration.applicationName) AND state LIKE 'idle in transaction%'
                """
            ).singleValue(Int32.self)
            #expect(inTransaction == 0)

            // The run exercised what it claims to: commits, cancels that landed, kills, every kind of operation.
            let committed = state.transfers.values.filter { if case .committed = $0 { true } else { false } }.count
            let failed = state.transfers.values.filter { if case .notCommitted = $0 { true } else { false } }.count
            let unknown = state.transfers.values.count - committed - failed
            var reasons: [String: Int] = [:]
            for outcome in state.transfers.values {
                switch outcome {
                case .committed: reasons["committed", default: 0] += 1
                case .notCommitted(let why), .unknown(let why): reasons[why, default: 0] += 1
                }
            }
            print("pool_chaos outcomes \(reasons.sorted { $0.key < $1.key })")
            print(
                "pool_chaos transfers=\(state.transfers.count) committed=\(committed) failed=\(failed) unknown=\(unknown) "
                    + "kept=\(kept.count) reads=\(state.reads) streams=\(state.streams) "
                    + "cancels_requested=\(state.cancelsRequested) cancelled=\(state.cancelled) kills=\(state.killed.count)"
            )
            let statistics = pool.statistics
            print(
                "pool_chaos dirty_returns=\(statistics.dirtyReturns) \(statistics.dirtyReturnsBySite) "
                    + ["in_transaction", "in_failed_transaction", "active", "unknown"].map {
                        "\($0)=\(metrics.counter("reservoir.postgres.dirty_returns", ["state": $0]))"
                    }.joined(separator: " ") + " "
                    + "fatal_errors=\(statistics.fatalErrors) cancellations_reused=\(statistics.cancellationsReused) "
                    + "cancellations_closed=\(statistics.cancellationsClosed)"
            )
            #expect(committed > 0)
            #expect(failed > 0)
            #expect(state.cancelled > 0)
            #expect(!state.killed.isEmpty)
            #expect(state.reads > 0)
            #expect(state.streams > 0)
            // And the pool still serves.
            #expect(try await pool.query("SELECT 1::int4").singleValue(Int32.self) == 1)
        }
    }

    /// Where an operation's task is cancelled.
    enum CancelPlan {
        case none
        /// By the worker, after this many yields: anywhere from before the lease to after the answer.
        case afterYields(Int)
        /// By the transaction's body itself, just before its statement of this index (3: after the last one, as the
        /// body returns).
        case beforeStatement(Int)
        /// Just before `COMMIT` is submitted (the transaction has decided to commit).
        case atCommit
        /// By the worker, this many yields after `COMMIT` was submitted: while it is in flight, or after its answer.
        case duringCommit(Int)
    }

    /// One operation of a worker, in a task of its own that is cancelled (a third of the time) at a random point.
    static func runOne(
        id: Int64,
        pool: PostgresPool,
        accounts: String,
        transfers: String,
        total: Int64,
        random: inout SeededRandomNumberGenerator,
        record: Record
    ) async {
        let source = Int32.random(in: 1...Int32(Self.accounts), using: &random)
        var target = Int32.random(in: 1...Int32(Self.accounts), using: &random)
        if target == source { target = source % Int32(Self.accounts) + 1 }
        let amount = Int64.random(in: 1...50, using: &random)
        let kind = Int.random(in: 0..<10, using: &random)
        let pinned = Bool.random(using: &random)
        enum Kind { case transaction, pipeline, read, stream }
        let operation: Kind = kind < 4 ? .transaction : kind < 6 ? .pipeline : kind < 8 ? .read : .stream
        // Yields are log-uniform from 0 to a few thousand.
        let yields = Int(exp(Double.random(in: 0..<log(4_000.0), using: &random))) - 1
        let plan: CancelPlan
        switch (Int.random(in: 0..<3, using: &random) == 0, operation, Int.random(in: 0..<4, using: &random)) {
        case (false, _, _): plan = .none
        case (true, .transaction, 0): plan = .beforeStatement(Int.random(in: 0...3, using: &random))
        case (true, .transaction, 1): plan = .atCommit
        case (true, .transaction, 2): plan = .duringCommit(Int.random(in: 0..<40, using: &random))
        case (true, _, _): plan = .afterYields(yields)
        }

        // Signals the worker when COMMIT is about to be submitted, and ends when the operation does.
        let (commitStarts, commitStartsContinuation) = AsyncStream<Void>.makeStream()
        let task = Task { () async throws -> Void in
            defer { commitStartsContinuation.finish() }
            let run = { () async throws -> Void in
                switch operation {
                case .transaction:
                    try await TransactionTestHooks.$commitWillStart.withValue({
                        if case .atCommit = plan { withUnsafeCurrentTask { $0?.cancel() } }
                        commitStartsContinuation.yield()
                    }) {
                        try await pool.withTransaction { transaction in
                            let statements: [PostgresQuery] = [
                                "UPDATE \(identifier: accounts) SET balance = balance - \(amount) WHERE id = \(source)",
                                "UPDATE \(identifier: accounts) SET balance = balance + \(amount) WHERE id = \(target)",
                                "INSERT INTO \(identifier: transfers) VALUES (\(id), \(source), \(target), \(amount))",
                            ]
                            for (index, statement) in statements.enumerated() {
                                if case .beforeStatement(index) = plan { withUnsafeCurrentTask { $0?.cancel() } }
                                try await transaction.execute(statement)
                            }
                            if case .beforeStatement(3) = plan { withUnsafeCurrentTask { $0?.cancel() } }
                        }
                    }
                case .pipeline:
                    let results = try await pool.pipeline(
                        [
                            "UPDATE \(identifier: accounts) SET balance = balance - \(amount) WHERE id = \(source)",
                            "UPDATE \(identifier: accounts) SET balance = balance + \(amount) WHERE id = \(target)",
                            "INSERT INTO \(identifier: transfers) VALUES (\(id), \(source), \(target), \(amount))",
                        ],
                        mode: .transaction
                    )
                    for result in results { _ = try result.get() }
                case .read:
                    let sum =
                        try await pool.query("SELECT sum(balance)::int8 FROM \(identifier: accounts)")
                        .singleValue(Int64.self) ?? -1
                    record.state.withLock {
                        $0.reads += 1
                        if sum != total { $0.inconsistentSums.append(sum) }
                    }
                case .stream:
                    try await pool.withConnection { connection in
                        var seen = 0
                        for try await _ in connection.stream(
                            "SELECT id FROM \(identifier: accounts) ORDER BY id", bufferSize: 4)
                        {
                            seen += 1
                            if seen == 5 { break }
                        }
                    }
                    record.state.withLock { $0.streams += 1 }
                }
            }
            if pinned { try await pool.withPinnedExecution { try await run() } } else { try await run() }
        }
        switch plan {
        case .afterYields(let count):
            for _ in 0..<count { await Task.yield() }
            task.cancel()
        case .duringCommit(let count):
            for await _ in commitStarts {
                for _ in 0..<count { await Task.yield() }
                task.cancel()
                break
            }
        case .none, .beforeStatement, .atCommit:
            break
        }
        let result = await task.result
        let isTransfer = operation == .transaction || operation == .pipeline
        record.state.withLock { state in
            if case .none = plan {} else { state.cancelsRequested += 1 }
            switch result {
            case .success:
                if isTransfer { state.transfers[id] = .committed }
            case .failure(let error):
                if error is CancellationError { state.cancelled += 1 }
                guard let outcome = classify(error, implicitTransaction: operation == .pipeline) else {
                    if state.unexpected.count < 5 { state.unexpected.append("\(type(of: error)): \(error)") }
                    if isTransfer { state.transfers[id] = .unknown("unexpected") }
                    return
                }
                if isTransfer { state.transfers[id] = outcome }
            }
        }
    }
}
