// The code shown in docs/testing.md, "A fresh, migrated database per test", kept here so that it compiles and
// runs. Change both together.

import ReservoirPostgres
import ReservoirPostgresTestKit
import Testing

// --- docs/testing.md begins ---
/// The code under test: it knows only its pool.
struct AccountStore {
    let pool: PostgresPool

    func open(owner: String, balance: Int64) async throws {
        try await pool.execute("INSERT INTO accounts (owner, balance) VALUES (\(owner), \(balance))")
    }

    func owners() async throws -> [String] {
        try await pool.query("SELECT owner FROM accounts ORDER BY owner").map { try $0.decode(String.self, column: 0) }
    }
}

/// The schema every test starts with. It runs once per server into a template database; each test gets a clone.
let accountMigrations = PostgresTestServer.Migrations.sql(
    """
    CREATE TABLE accounts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner text NOT NULL,
        balance bigint NOT NULL CHECK (balance >= 0)
    )
    """
)

/// Runs `body` with an `AccountStore` on a database of its own, and drops the database afterwards.
func withAccountStore(_ body: (AccountStore) async throws -> Void) async throws {
    let server = try await PostgresTestServer.shared
    try await server.withDatabase(migrations: accountMigrations) { database in
        let pool = try PostgresPool(configuration: .init(connectionString: database.connectionString, name: "accounts"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            defer { pool.triggerGracefulShutdown() }
            try await body(AccountStore(pool: pool))
        }
    }
}

// Swift Testing runs these two at the same time; each sees only its own rows.
@Suite("Accounts")
struct AccountStoreTests {
    @Test("opening an account stores its owner")
    func opensAnAccount() async throws {
        try await withAccountStore { store in
            try await store.open(owner: "ada", balance: 100)
            #expect(try await store.owners() == ["ada"])
        }
    }

    @Test("two accounts are listed by owner")
    func listsTwoAccounts() async throws {
        try await withAccountStore { store in
            try await store.open(owner: "grace", balance: 5)
            try await store.open(owner: "alan", balance: 7)
            #expect(try await store.owners() == ["alan", "grace"])
        }
    }
}
// --- docs/testing.md ends ---
