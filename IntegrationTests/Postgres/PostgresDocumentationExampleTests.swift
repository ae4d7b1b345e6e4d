import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Testing

// The examples in docs/postgres.md, compiled and run against a throwaway server. Keep them in sync.
@Suite("docs/postgres.md examples")
struct PostgresDocumentationExampleTests {
    // MARK: Configuration

    @Test("configuration from a string, a URI or fields")
    func configuration() async throws {
        let server = try await TestDatabase.server.value
        let socketDirectory = server.connection.socketDirectory
        let port = server.connection.port

        // docs: configuration
        // A libpq connection string or URI; anything left out comes from PGHOST, PGPORT, PGUSER, … and ~/.pgpass.
        var configuration = try PostgresConnection.Configuration(
            connectionString: "host=\(socketDirectory) port=\(port) user=postgres dbname=postgres"
        )
        configuration.connectTimeout = .seconds(5)      // default 10 s, covers DNS, TLS and authentication
        configuration.statementCacheCapacity = 100      // default 256; 0 turns the cache off (PgBouncer)
        try configuration.set("application_name", to: "billing")

        // The same from fields:
        let fields = try PostgresConnection.Configuration(
            host: socketDirectory, port: port, user: "postgres", password: nil, database: "postgres"
        )

        // Mistakes are caught before connecting, with libpq's message (and never the password):
        do {
            _ = try PostgresConnection.Configuration(connectionString: "host=db password=secret sslmode")
        } catch let error as PostgresError {
            print(error)  // PostgresError.invalidConfiguration: connectionString: missing "=" after "sslmode" …
        }

        let connection = try await PostgresConnection.connect(
            configuration: configuration,
            logger: Logger(label: "billing.db")
        )
        defer { Task { await connection.close() } }
        // end docs

        #expect(fields["host"] == socketDirectory)
        #expect(try await connection.query("SHOW application_name").singleValue(String.self) == "billing")
    }

    // MARK: Queries

    struct Invoice: Decodable {
        var id: Int
        var customerName: String
        var total: Decimal
        var paidAt: Date?
    }

    @Test("queries, rows and types")
    func queries() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            try await connection.unsafeExecuteScript("""
                CREATE TEMP TABLE invoices (
                    id bigserial PRIMARY KEY, customer_name text NOT NULL, total numeric NOT NULL,
                    paid_at timestamptz, tags text[] NOT NULL DEFAULT '{}');
                """)
            // docs: queries
            let customer = "Robert'); DROP TABLE invoices; --"  // harmless: values are never spliced into SQL
            let total = Decimal(string: "199.90")!
            try await connection.execute("""
                INSERT INTO invoices (customer_name, total, tags) VALUES (\(customer), \(total), \(["new", "eu"]))
                """)

            let rows = try await connection.query("SELECT id, customer_name, total, paid_at FROM invoices")
            for row in rows {
                let id = try row.decode(Int.self, column: 0)                   // by index
                let name = try row.decode(String.self, column: "customer_name")  // by name
                let (_, _, amount, paidAt) = try row.decode((Int, String, Decimal, Date?).self)  // all at once
                let invoice = try row.decode(as: Invoice.self, keyStrategy: .convertToSnakeCase)  // Decodable
                print(id, name, amount, paidAt as Any, invoice.customerName)
            }
            let count = try await connection.query("SELECT count(*) FROM invoices").singleValue(Int.self)
            // end docs
            #expect(count == 1)
            #expect(try rows[0].decode(String.self, column: "customer_name") == customer)
        }
    }

    @Test("transactions and savepoints")
    func transactions() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            try await connection.unsafeExecuteScript("""
                CREATE TEMP TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
                INSERT INTO accounts VALUES (1, 100), (2, 0);
                CREATE TEMP TABLE audit (note text);
                """)
            let from: Int32 = 1, to: Int32 = 2, amount: Int32 = 30
            // docs: transactions
            try await connection.withTransaction(isolationLevel: .repeatableRead) { transaction in
                try await transaction.execute("UPDATE accounts SET balance = balance - \(amount) WHERE id = \(from)")
                try await transaction.execute("UPDATE accounts SET balance = balance + \(amount) WHERE id = \(to)")
                // A nested transaction is a savepoint: its failure does not undo the transfer.
                do {
                    try await transaction.withSavepoint { inner in
                        try await inner.execute("INSERT INTO audit VALUES (\("transfer"))")
                        try await inner.execute("UPDATE accounts SET balance = -1 WHERE id = \(from)")  // violates CHECK
                    }
                } catch let error as PostgresError where error.sqlState == .checkViolation {
                    // rolled back to the savepoint; the outer transaction goes on
                }
            }  // COMMIT here; ROLLBACK if the closure throws or the task is cancelled
            // end docs
            let balances = try await connection.query("SELECT balance FROM accounts ORDER BY id")
            #expect(try balances.map { try $0.decode(Int32.self, column: 0) } == [70, 30])
            #expect(try await connection.query("SELECT count(*) FROM audit").singleValue(Int.self) == 0)
        }
    }

    @Test("cancellation, streaming and pipelining")
    func cancellationStreamingPipelining() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            // docs: cancellation
            let report = Task { try await connection.query("SELECT pg_sleep(10)") }
            report.cancel()  // the server stops the statement; `report` throws CancellationError
            _ = try? await report.value
            try await connection.query("SELECT 1")  // the connection is idle and usable again
            // end docs

            // docs: streaming
            var total = 0
            for try await row in connection.stream("SELECT generate_series(1, \(1_000_000))", bufferSize: 512) {
                total += try row.decode(Int.self, column: 0)
                if total > 1_000_000 { break }  // stops the statement on the server; the connection stays usable
            }
            // end docs
            #expect(total > 1_000_000)

            // docs: pipelining
            let results = try await connection.pipeline([
                "SELECT \(1)::int8",
                "SELECT 1 / \(0)",  // fails alone: every statement has its own Sync
                "SELECT \(3)::int8",
            ])
            for result in results {
                switch result {
                case .success(let rows): print(try rows.singleValue(Int.self) ?? 0)
                case .failure(let error): print(error.sqlState ?? "none")  // 22012
                }
            }
            // end docs
            #expect(try results[2].get().singleValue(Int.self) == 3)
        }
    }

    @Test("a transfer as a transaction pipeline")
    func transactionPipeline() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            try await connection.unsafeExecuteScript("""
                CREATE TEMP TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
                INSERT INTO accounts VALUES (1, 100), (2, 0);
                CREATE TEMP TABLE transfers (source int, target int, amount int);
                """)
            let from: Int32 = 1, to: Int32 = 2, amount: Int32 = 30
            // docs: transaction pipeline
            let results = try await connection.pipeline(
                [
                    "UPDATE accounts SET balance = balance - \(amount) WHERE id = \(from)",
                    "UPDATE accounts SET balance = balance + \(amount) WHERE id = \(to)",
                    "INSERT INTO transfers (source, target, amount) VALUES (\(from), \(to), \(amount))",
                ],
                mode: .transaction
            )
            // end docs
            #expect(try results.map { try $0.get().affectedRowCount } == [1, 1, 1])
            // An overdraft fails the whole batch: the CHECK fails the UPDATE, and the INSERT before it is rolled back.
            let overdraft = try await connection.pipeline(
                [
                    "INSERT INTO transfers (source, target, amount) VALUES (\(from), \(to), \(Int32(500)))",
                    "UPDATE accounts SET balance = balance - \(Int32(500)) WHERE id = \(from)",
                ],
                mode: .transaction
            )
            guard case .failure(let error) = overdraft[1] else {
                Issue.record("the overdraft succeeded")
                return
            }
            #expect(error.sqlState == .checkViolation)
            #expect(try await connection.query("SELECT count(*) FROM transfers").singleValue(Int.self) == 1)
            #expect(try await connection.query("SELECT balance FROM accounts WHERE id = 1").singleValue(Int32.self) == 70)
        }
    }

    @Test("LISTEN/NOTIFY and errors")
    func notificationsAndErrors() async throws {
        let listener = try await TestDatabase.connect()
        let connection = try await TestDatabase.connect()
        // docs: notifications
        let notifications = try await listener.listen("invoices")   // a connection dedicated to listening
        try await connection.notify(channel: "invoices", payload: "42")  // or NOTIFY in SQL, delivered on commit
        for await notification in notifications {
            print(notification.channel, notification.payload, notification.processID)
            break
        }
        // end docs

        // docs: errors
        do {
            try await connection.query("INSERT INTO missing_table VALUES (\(1))")
        } catch let error as PostgresError where error.code == .server {
            print(error.sqlState == .undefinedTable)  // true
            print(error.message)    // relation "missing_table" does not exist
            print(error.position ?? 0)  // 13
            print(error.statement ?? "")  // INSERT INTO missing_table VALUES ($1): no parameter values
        } catch let error as PostgresError where error.code == .connectionClosed {
            print("reconnect:", error.message)
        }
        // end docs
        await listener.close()
        await connection.close()
    }

    @Test("pinned execution")
    func pinned() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let ids = Array(1...100)
            // docs: pinned
            let names = try await connection.withPinnedExecution {
                var names: [String] = []
                for id in ids {  // each round trip continues on the connection's thread: no thread hop
                    names.append(try await connection.query("SELECT \(id)::text").singleValue(String.self) ?? "")
                }
                return names
            }
            // end docs
            #expect(names.count == 100)
        }
    }
}
