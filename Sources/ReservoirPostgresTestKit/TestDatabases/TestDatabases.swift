import Foundation
import Synchronization

/// The template databases of one server and the housekeeping connections that build, clone and drop them.
///
/// A template is built once per migration set:
///
/// 1. In this process, the first caller for a key starts the build as a task; every other caller for that key
///    awaits the same task, so a process builds a template at most once and later callers pay no round trip.
/// 2. Across processes that share the server, the build runs under `pg_advisory_lock(<key>)` on a housekeeping
///    connection. Holding it, the builder looks for the finished template by name and is done if it exists;
///    otherwise it drops what a crashed builder may have left (`…_building`), creates `<template>_building`, runs
///    the migrations into it, closes every session on it and renames it to the template's name. The rename is
///    atomic, so a template found by name is complete, and no clone ever starts from a database still being
///    migrated.
/// 3. Cloning needs no lock: PostgreSQL refuses `CREATE DATABASE … TEMPLATE x` only while some session is connected
///    *to* `x`, and the finished template allows no connections (`ALLOW_CONNECTIONS false`); concurrent clones of
///    one template run side by side (each holds a share lock on it).
package final class TestDatabases: Sendable {
    private let connection: PostgresTestServer.ConnectionDetails
    /// The build of each template (by key) in this process; a failed build is removed so the next caller retries.
    private let templates = Mutex<[String: Task<String, any Error>]>([:])
    /// Idle housekeeping connections, reused so that a clone costs one round trip.
    private let idle = Mutex<[AdminConnection]>([])
    /// Clones made ahead of time, per template and strategy.
    private let spares = Mutex<[SpareKey: Spares]>([:])
    private static let maximumIdleConnections = 8

    init(connection: PostgresTestServer.ConnectionDetails) {
        self.connection = connection
    }

    // MARK: - Test databases

    package func makeDatabase(
        migrations: PostgresTestServer.Migrations,
        options: PostgresTestServer.DatabaseOptions,
        server: PostgresTestServer
    ) async throws -> PostgresTestServer.Database {
        try Self.validate(namePrefix: options.namePrefix)
        let key = try migrations.key()
        let template = try await template(for: key, migrations: migrations, server: server)
        let spareKey = SpareKey(template: template, strategy: options.cloneStrategy)
        let name = "\(options.namePrefix)_\(key.prefix(8))_\(Self.randomHex(8))"
        let spare = options.preparesNextDatabase ? spares.withLock { $0[spareKey]?.ready.popLast() } : nil
        var handedOver = false
        if let spare {
            // A clone made in the background while the previous test ran: only its name changes. Should the rename
            // fail (a session on the spare), the spare goes and the caller gets a clone of its own.
            do {
                try await rename(spare, to: name)
                handedOver = true
            } catch {
                try? await drop(spare)
            }
        }
        if !handedOver {
            try await clone(template, into: name, strategy: options.cloneStrategy)
        }
        if options.preparesNextDatabase {
            prepareSpare(spareKey, keyPrefix: String(key.prefix(8)))
        }
        return PostgresTestServer.Database(name: name, server: server, templateName: template)
    }

    /// `ALTER DATABASE name RENAME TO newName`.
    private func rename(_ name: String, to newName: String) async throws {
        try await withAdminConnection { admin in
            try await Self.run(admin, "ALTER DATABASE \(quoted(name)) RENAME TO \(quoted(newName))") {
                "Could not rename the prepared clone \(name) to \(newName): \($0)."
            }
        }
    }

    /// `CREATE DATABASE name TEMPLATE template [STRATEGY …]`.
    private func clone(_ template: String, into name: String, strategy: PostgresTestServer.CloneStrategy)
        async throws
    {
        try await withAdminConnection { admin in
            var sql = "CREATE DATABASE \(quoted(name)) TEMPLATE \(quoted(template))"
            if let strategy = strategy.sql, admin.serverVersion >= 150_000 {
                sql += " STRATEGY \(strategy)"
            }
            try await Self.run(admin, sql) { "Could not clone the template \(template) into \(name): \($0)." }
        }
    }

    // MARK: - Spare clones

    /// The prepared clones of one template and strategy.
    private struct SpareKey: Hashable, Sendable {
        var template: String
        var strategy: PostgresTestServer.CloneStrategy
    }

    private struct Spares {
        /// Clones ready to be handed out (by name).
        var ready: [String] = []
        /// Clones being made, by a number of their own.
        var inProgress: [UInt64: Task<Void, Never>] = [:]
    }

    /// How many clones of each template are kept ready: one covers a test that follows another, and more would
    /// only compete with the tests for the two cores.
    private static let sparesPerTemplate = 1

    /// Starts a clone in the background for the next caller of `key`, unless enough are ready or being made.
    ///
    /// The clone runs while the caller's test does, so the next test of the same migration set finds its database
    /// already made and pays for a rename only. A spare that fails is forgotten: the next caller clones itself.
    private func prepareSpare(_ key: SpareKey, keyPrefix: String) {
        let name = "spare_\(keyPrefix)_\(Self.randomHex(8))"
        spares.withLock { spares in
            var entry = spares[key, default: Spares()]
            guard entry.ready.count + entry.inProgress.count < Self.sparesPerTemplate else { return }
            let number = UInt64.random(in: 0...UInt64.max)
            // Unstructured on purpose: the spare outlives the call that asked for it. Started under the lock so
            // that it is in the table before it can finish; it takes the lock itself only once the clone is done.
            entry.inProgress[number] = Task {
                let made: Bool
                do {
                    try await self.clone(key.template, into: name, strategy: key.strategy)
                    made = true
                } catch {
                    made = false
                }
                self.spares.withLock { spares in
                    spares[key]?.inProgress[number] = nil
                    if made { spares[key]?.ready.append(name) }
                }
            }
            spares[key] = entry
        }
    }

    /// For tests: waits until no spare clone is being made.
    package func waitForSpares() async {
        while true {
            let tasks = spares.withLock { spares in spares.values.flatMap { $0.inProgress.values } }
            guard !tasks.isEmpty else { return }
            for task in tasks { await task.value }
        }
    }

    /// The names of the spare clones ready now, for tests.
    package var readySpares: [String] {
        spares.withLock { spares in spares.values.flatMap(\.ready) }
    }

    func drop(_ name: String) async throws {
        try await withAdminConnection { admin in
            try await Self.run(admin, "DROP DATABASE IF EXISTS \(quoted(name)) WITH (FORCE)") {
                "Could not drop the test database \(name): \($0)."
            }
        }
    }

    /// Runs `sql`, turning the server's error into `.sqlFailed` with `message`.
    private static func run(
        _ admin: AdminConnection,
        _ sql: String,
        message: (AdminConnection.ServerError) -> String
    ) async throws {
        do {
            _ = try await admin.query(sql)
        } catch let error as AdminConnection.ServerError {
            throw PostgresTestServerError(.sqlFailed, message: message(error))
        }
    }

    // MARK: - Templates

    /// The name of the finished template for `key`, built first when needed (see the type's documentation).
    func template(
        for key: String,
        migrations: PostgresTestServer.Migrations,
        server: PostgresTestServer
    ) async throws -> String {
        let task: Task<String, any Error> = templates.withLock { templates in
            if let existing = templates[key] { return existing }
            // Unstructured: a cancelled first caller must not fail the build for everyone waiting on it.
            let build = Task { try await self.build(key: key, migrations: migrations, server: server) }
            templates[key] = build
            return build
        }
        do {
            return try await task.value
        } catch {
            templates.withLock { templates in
                if templates[key] == task { templates[key] = nil }
            }
            throw error
        }
    }

    private func build(
        key: String,
        migrations: PostgresTestServer.Migrations,
        server: PostgresTestServer
    ) async throws -> String {
        let name = "reservoir_template_" + key.prefix(16)
        let building = name + "_building"
        // The lock's connection stays open for the whole build; closing it (also by a crash) releases the lock.
        let lockHolder = try await openConnection()
        do {
            let lockKey = Int64(bitPattern: UInt64(key.prefix(16), radix: 16) ?? 0)
            _ = try await lockHolder.query("SELECT pg_advisory_lock(\(lockKey))")
            let found = try await lockHolder.query("SELECT 1 FROM pg_database WHERE datname = \(literal(name))")
            if found.isEmpty {
                try await migrate(
                    into: building,
                    finalName: name,
                    migrations: migrations,
                    on: lockHolder,
                    server: server
                )
            }
            _ = try await lockHolder.query("SELECT pg_advisory_unlock(\(lockKey))")
            await lockHolder.close()
            return name
        } catch let error as AdminConnection.ServerError {
            await lockHolder.close()
            throw PostgresTestServerError(
                .sqlFailed, message: "Could not build the template database \(name): \(error).")
        } catch {
            await lockHolder.close()
            throw error
        }
    }

    /// Creates `building`, runs the migrations into it and renames it to `finalName`; on failure drops it.
    private func migrate(
        into building: String,
        finalName: String,
        migrations: PostgresTestServer.Migrations,
        on admin: AdminConnection,
        server: PostgresTestServer
    ) async throws {
        _ = try await admin.query("DROP DATABASE IF EXISTS \(quoted(building)) WITH (FORCE)")
        _ = try await admin.query("CREATE DATABASE \(quoted(building)) TEMPLATE template1")
        do {
            let database = PostgresTestServer.Database(name: building, server: server, templateName: nil)
            for (index, step) in migrations.steps.enumerated() {
                try await run(step, number: index + 1, on: database, server: server)
            }
            // No session may stay on the template: close what the migrations left open, and refuse new ones.
            _ = try await admin.query(
                """
                ALTER DATABASE \(quoted(building)) ALLOW_CONNECTIONS false;
                SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = \(literal(building));
                """
            )
            _ = try await admin.query(
                """
                ALTER DATABASE \(quoted(building)) RENAME TO \(quoted(finalName));
                ALTER DATABASE \(quoted(finalName)) IS_TEMPLATE true;
                COMMENT ON DATABASE \(quoted(finalName)) IS 'PostgresTestServer: test databases are cloned from it';
                """
            )
        } catch {
            _ = try? await admin.query("DROP DATABASE IF EXISTS \(quoted(building)) WITH (FORCE)")
            throw error
        }
    }

    private func run(
        _ step: PostgresTestServer.Migrations.Step,
        number: Int,
        on database: PostgresTestServer.Database,
        server: PostgresTestServer
    ) async throws {
        switch step {
        case .sql(let scripts):
            for (index, script) in scripts.enumerated() {
                try await runScript(
                    input: script,
                    file: nil,
                    what: "SQL script \(index + 1) of step \(number)",
                    database: database.name,
                    server: server
                )
            }
        case .directory(let path):
            for file in try PostgresTestServer.Migrations.sqlFiles(in: path) {
                try await runScript(input: nil, file: file, what: file, database: database.name, server: server)
            }
        case .closure(let version, let migrate):
            do {
                try await migrate(database)
            } catch {
                throw PostgresTestServerError(
                    .migrationFailed,
                    message: "The migration closure of step \(number) (version \(version)) threw.",
                    underlying: error
                )
            }
        }
    }

    private func runScript(
        input: String?,
        file: String?,
        what: String,
        database: String,
        server: PostgresTestServer
    ) async throws {
        var arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]
        arguments += ["-f", file ?? "-"]
        let output = try await server.runTool("psql", arguments: arguments, input: input)
        guard output.succeeded else {
            throw PostgresTestServerError(
                .migrationFailed,
                message:
                    "The migration \(what) failed (psql exit status \(output.exitStatus)); the template was not made.",
                logTail: Cluster.lastLines(of: output.standardError, count: 20)
            )
        }
    }

    // MARK: - Housekeeping connections

    private func openConnection() async throws -> AdminConnection {
        try await AdminConnection.connect(
            socketDirectory: connection.socketDirectory,
            port: connection.port,
            user: connection.user,
            database: "postgres"
        )
    }

    private func withAdminConnection<Value>(_ body: (AdminConnection) async throws -> Value) async throws -> Value {
        let reused = idle.withLock { $0.popLast() }
        let admin: AdminConnection
        if let reused {
            admin = reused
        } else {
            admin = try await openConnection()
        }
        do {
            let value = try await body(admin)
            await giveBack(admin)
            return value
        } catch {
            await giveBack(admin)
            throw error
        }
    }

    private func giveBack(_ admin: AdminConnection) async {
        let kept =
            admin.isReusable
            && idle.withLock { idle in
                guard idle.count < Self.maximumIdleConnections else { return false }
                idle.append(admin)
                return true
            }
        if !kept { await admin.close() }
    }

    /// Closes the idle housekeeping connections (the server is going away).
    func closeIdleConnections() async {
        let connections = idle.withLock { idle in
            defer { idle.removeAll() }
            return idle
        }
        for connection in connections { await connection.close() }
    }

    // MARK: - Names

    private static func validate(namePrefix: String) throws {
        guard (1...30).contains(namePrefix.utf8.count),
            namePrefix.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
            })
        else {
            throw PostgresTestServerError(
                .invalidConfiguration,
                message:
                    "DatabaseOptions field `namePrefix` must be 1 to 30 lowercase ASCII letters, digits or underscores."
            )
        }
    }

    private static func randomHex(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<count).map { _ in digits[Int(generator.next() % 16)] })
    }
}

private func quoted(_ identifier: String) -> String {
    PostgresTestServer.quotedIdentifier(identifier)
}

private func literal(_ text: String) -> String {
    PostgresTestServer.quotedLiteral(text)
}
