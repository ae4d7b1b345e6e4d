import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Synchronization
import Testing

@Suite("PostgresTestServer test databases")
struct TestDatabaseTests {
    static let itemsSchema = PostgresTestServer.Migrations.sql(
        "CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL)",
        "CREATE INDEX items_owner ON items (owner)"
    )

    @Test("16 tests in parallel each get their own migrated database, with no error and no cross-talk")
    func sixteenInParallel() async throws {
        let server = try await PostgresTestServer.shared
        let names = try await withThrowingTaskGroup(of: String.self) { group in
            for owner in 0..<16 {
                group.addTask {
                    try await server.withDatabase(migrations: Self.itemsSchema) { database in
                        let connection = try await PostgresConnection.connect(
                            configuration: .init(connectionString: database.connectionString),
                            logger: Logger(label: "test")
                        )
                        do {
                            for id in 0..<20 {
                                try await connection.execute(
                                    "INSERT INTO items (id, owner) VALUES (\(Int32(id)), \(Int32(owner)))"
                                )
                            }
                            let rows = try await connection.query(
                                "SELECT count(*)::int4, min(owner), max(owner) FROM items"
                            )
                            let (count, lowest, highest) = try #require(rows.first).decode((Int32, Int32, Int32).self)
                            #expect(count == 20)
                            #expect(lowest == Int32(owner) && highest == Int32(owner))
                            #expect(
                                try await connection.query("SELECT current_database()").singleValue(String.self)
                                    == database.name)
                        } catch {
                            await connection.close()
                            throw error
                        }
                        await connection.close()
                        return database.name
                    }
                }
            }
            var names: [String] = []
            for try await name in group { names.append(name) }
            return names
        }
        #expect(Set(names).count == 16)
        let left = try await server.psql(
            "SELECT count(*) FROM pg_database WHERE datname IN (\(names.map { "'\($0)'" }.joined(separator: ",")))"
        )
        #expect(left == "0")
    }

    @Test("an unchanged migration set is migrated once and reused; a changed one builds a new template")
    func migrationHash() async throws {
        try await PostgresTestServer.withServer { server in
            let runs = Counter()
            func migrations(version: String) -> PostgresTestServer.Migrations {
                Self.itemsSchema.followed(
                    by: .closure(version: version) { database in
                        runs.increment()
                        try await database.psql("INSERT INTO items VALUES (1, 1)")
                    }
                )
            }
            for _ in 0..<3 {
                let count = try await server.withDatabase(migrations: migrations(version: "1")) { database in
                    try await database.psql("SELECT count(*) FROM items")
                }
                #expect(count == "1")
            }
            #expect(runs.value == 1)
            #expect(try await templateCount(server) == 1)

            try await server.withDatabase(migrations: migrations(version: "2")) { _ in }
            #expect(runs.value == 2)
            #expect(try await templateCount(server) == 2)

            // Changing a script's text changes the key, and so the template.
            let other = try await server.withDatabase(migrations: .sql("CREATE TABLE other (x int)")) { database in
                try await database.psql("SELECT count(*) FROM other")
            }
            #expect(other == "0")
            #expect(try await templateCount(server) == 3)
        }
    }

    @Test("keys follow the migrations' content: scripts, folder files and closure versions")
    func keys() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "CREATE TABLE a (x int);".write(
            to: folder.appendingPathComponent("001_a.sql"), atomically: true, encoding: .utf8)
        try "ignored".write(to: folder.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)

        let fromFolder = try PostgresTestServer.Migrations.directory(folder.path).key()
        #expect(try PostgresTestServer.Migrations.directory(folder.path).key() == fromFolder)
        try "CREATE TABLE a (x bigint);".write(
            to: folder.appendingPathComponent("001_a.sql"), atomically: true, encoding: .utf8)
        #expect(try PostgresTestServer.Migrations.directory(folder.path).key() != fromFolder)

        #expect(
            try PostgresTestServer.Migrations.sql("a", "b").key() == PostgresTestServer.Migrations.sql("a", "b").key())
        #expect(try PostgresTestServer.Migrations.sql("a", "b").key() != PostgresTestServer.Migrations.sql("ab").key())
        #expect(
            try PostgresTestServer.Migrations.closure(version: "1") { _ in }.key()
                != PostgresTestServer.Migrations.closure(version: "2") { _ in }.key()
        )
        #expect(try PostgresTestServer.Migrations.none.key().count == 64)

        let missing = #expect(throws: PostgresTestServerError.self) {
            try PostgresTestServer.Migrations.directory(folder.path + "/nope").key()
        }
        #expect(missing?.code == .invalidConfiguration)
    }

    @Test("the key's digest is SHA-256 (FIPS 180-4 test vectors)")
    func sha256() {
        func digest(_ text: String) -> String {
            var hash = SHA256()
            hash.update(text.utf8)
            return hash.hexDigest()
        }
        #expect(digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        )
        #expect(
            digest(String(repeating: "a", count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        )
    }

    @Test("two processes sharing a server build a template once: the second waits for the first's advisory lock")
    func twoProcessesShareATemplate() async throws {
        try await PostgresTestServer.withServer { server in
            let runs = Counter()
            let migrations = PostgresTestServer.Migrations.closure(version: "shared") { database in
                runs.increment()
                try await database.psql("CREATE TABLE built_once (x int)")
            }
            // A second view of the server with its own in-process state, as another test process has.
            let otherProcess = server.independentTestDatabases()
            async let first = server.withDatabase(migrations: migrations) { $0.name }
            async let second = otherProcess.makeDatabase(migrations: migrations, options: .init(), server: server)
            let (name, otherDatabase) = try await (first, second)
            #expect(name != otherDatabase.name)
            #expect(try await otherDatabase.psql("SELECT count(*) FROM built_once") == "0")
            try await otherDatabase.drop()
            #expect(runs.value == 1)
            #expect(try await templateCount(server) == 1)
        }
    }

    @Test("a template built by another process is found by name and not migrated again")
    func templateOfAnotherProcess() async throws {
        try await PostgresTestServer.withServer { server in
            let runs = Counter()
            let migrations = PostgresTestServer.Migrations.closure(version: "elsewhere") { _ in runs.increment() }
            // Another process (psql) builds the template first, the way this module does, under the same lock.
            let key = try migrations.key()
            let lock = Int64(bitPattern: UInt64(key.prefix(16), radix: 16)!)
            try await server.psql(
                """
                SELECT pg_advisory_lock(\(lock));
                CREATE DATABASE reservoir_template_\(key.prefix(16)) IS_TEMPLATE true ALLOW_CONNECTIONS false;
                SELECT pg_advisory_unlock(\(lock));
                """
            )
            try await server.withDatabase(migrations: migrations) { _ in }
            #expect(runs.value == 0)
        }
    }

    @Test("the database is dropped when the body throws, and connections left open do not stop the drop")
    func dropsOnThrow() async throws {
        struct Planned: Error {}
        let server = try await PostgresTestServer.shared
        let seen = Mutex<String?>(nil)
        await #expect(throws: Planned.self) {
            try await server.withDatabase(migrations: Self.itemsSchema) { database in
                seen.withLock { $0 = database.name }
                // Left open on purpose: the drop closes it.
                let connection = try await PostgresConnection.connect(
                    configuration: .init(connectionString: database.connectionString)
                )
                _ = try await connection.query("SELECT 1")
                throw Planned()
            }
        }
        let name = try #require(seen.withLock { $0 })
        #expect(try await server.psql("SELECT count(*) FROM pg_database WHERE datname = '\(name)'") == "0")
    }

    @Test("keepOnFailure keeps a failed test's database and prints its name and connection string, not the password")
    func keepsOnFailure() async throws {
        struct Planned: Error {}
        try await PostgresTestServer.withServer { server in
            let reports = Mutex<[String]>([])
            var options = PostgresTestServer.DatabaseOptions(keepOnFailure: true, namePrefix: "orders")
            options.report = { text in reports.withLock { $0.append(text) } }
            let seen = Mutex<String?>(nil)
            await #expect(throws: Planned.self) {
                try await server.withDatabase(migrations: Self.itemsSchema, options: options) { database in
                    seen.withLock { $0 = database.name }
                    try await database.psql("INSERT INTO items VALUES (7, 7)")
                    throw Planned()
                }
            }
            let name = try #require(seen.withLock { $0 })
            #expect(name.hasPrefix("orders_"))
            #expect(try await server.psql("SELECT count(*) FROM items", database: name) == "1")
            let report = try #require(reports.withLock { $0.first })
            #expect(report.contains(name))
            #expect(report.contains("host=\(server.connection.socketDirectory) port=\(server.connection.port)"))
            #expect(report.contains("dbname=\(name)"))
            let password = try #require(server.connection.password)
            #expect(!report.contains(password))

            // A passing body drops its database even with the option on.
            let passed = try await server.withDatabase(migrations: Self.itemsSchema, options: options) { $0.name }
            #expect(try await server.psql("SELECT count(*) FROM pg_database WHERE datname = '\(passed)'") == "0")
            #expect(reports.withLock { $0.count } == 1)
        }
    }

    @Test("a failing migration fails with its error, leaves no template, and a fixed set builds afterwards")
    func failingMigration() async throws {
        try await PostgresTestServer.withServer { server in
            let broken = PostgresTestServer.Migrations.sql(
                "CREATE TABLE ok (x int)", "CREATE TABLE broken (x nosuchtype)")
            let error = await #expect(throws: PostgresTestServerError.self) {
                try await server.withDatabase(migrations: broken) { _ in }
            }
            #expect(error?.code == .migrationFailed)
            #expect(error?.logTail?.contains("nosuchtype") == true)
            #expect(
                try await server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'reservoir_template_%'")
                    == "0")

            let again = await #expect(throws: PostgresTestServerError.self) {
                try await server.withDatabase(migrations: broken) { _ in }
            }
            #expect(again?.code == .migrationFailed)
            let count = try await server.withDatabase(migrations: .sql("CREATE TABLE ok (x int)")) { database in
                try await database.psql("SELECT count(*) FROM ok")
            }
            #expect(count == "0")
        }
    }

    @Test("makeDatabase gives a database the caller drops; both clone strategies work")
    func unscoped() async throws {
        let server = try await PostgresTestServer.shared
        for strategy in [PostgresTestServer.CloneStrategy.fileCopy, .walLog, .serverDefault] {
            let database = try await server.makeDatabase(
                migrations: Self.itemsSchema,
                options: .init(cloneStrategy: strategy)
            )
            #expect(try await database.psql("SELECT count(*) FROM items") == "0")
            #expect(!String(describing: database).contains(server.connection.password ?? "-"))
            try await database.drop()
            try await database.drop()
            #expect(
                try await server.psql("SELECT count(*) FROM pg_database WHERE datname = '\(database.name)'") == "0")
        }
        let error = await #expect(throws: PostgresTestServerError.self) {
            try await server.makeDatabase(options: .init(namePrefix: "Bad-Name"))
        }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test("the next database of a migration set is cloned ahead, while the previous test runs, and handed over renamed")
    func preparesTheNextDatabase() async throws {
        try await PostgresTestServer.withServer { server in
            let first = try await server.makeDatabase(migrations: Self.itemsSchema)
            await server.testDatabases.waitForSpares()
            let spare = try #require(server.testDatabases.readySpares.first)
            #expect(try await server.psql("SELECT count(*) FROM pg_database WHERE datname = '\(spare)'") == "1")

            let second = try await server.makeDatabase(migrations: Self.itemsSchema)
            #expect(try await server.psql("SELECT count(*) FROM pg_database WHERE datname = '\(spare)'") == "0")
            #expect(try await second.psql("SELECT count(*) FROM items") == "0")
            await server.testDatabases.waitForSpares()
            #expect(server.testDatabases.readySpares.count == 1)
            #expect(!server.testDatabases.readySpares.contains(spare))

            // Without preparing, a caller neither takes nor makes a spare.
            var options = PostgresTestServer.DatabaseOptions()
            options.preparesNextDatabase = false
            let third = try await server.makeDatabase(migrations: Self.itemsSchema, options: options)
            #expect(server.testDatabases.readySpares.count == 1)
            for database in [first, second, third] { try await database.drop() }
        }
    }

    @Test("a pool configuration from the clone's connection string reaches the clone")
    func poolConfiguration() async throws {
        let server = try await PostgresTestServer.shared
        try await server.withDatabase(migrations: Self.itemsSchema) { database in
            let pool = try PostgresPool(
                configuration: .init(connectionString: database.tcpConnectionString, name: "clone-pool")
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await pool.run() }
                let rows = try await pool.query("SELECT current_database(), inet_server_addr() IS NOT NULL")
                let (name, overTCP) = try #require(rows.first).decode((String, Bool).self)
                #expect(name == database.name)
                #expect(overTCP)
                pool.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
    }

    @Test("the shared server is one server, started once")
    func sharedServer() async throws {
        async let first = PostgresTestServer.shared
        async let second = PostgresTestServer.shared
        let (a, b) = try await (first, second)
        #expect(a === b)
        #expect(a.isRunning)
    }
}

/// The templates this module built on `server`.
private func templateCount(_ server: PostgresTestServer) async throws -> Int {
    Int(try await server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'reservoir_template_%'")) ?? -1
}

/// A thread-safe counter of migration runs.
private final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
