import Foundation
import ReservoirPostgresTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("PostgresTestServer")
struct PostgresTestServerTests {
    @Test("starts a server that psql can query over the Unix socket and over TCP")
    func startsAndAnswersQueries() async throws {
        try await PostgresTestServer.withServer { server in
            #expect(server.isRunning)
            #expect(try await server.psql("SELECT 1 + 1") == "2")

            let overSocket = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-A", "-t", "-d", server.connection.unixSocketConnectionString, "-c",
                    "SELECT current_user || ',' || current_database() || ','"
                        + " || coalesce(inet_server_addr()::text, 'socket')",
                ]
            )
            #expect(overSocket.succeeded, "\(overSocket.standardError)")
            #expect(overSocket.standardOutput == "postgres,postgres,socket\n")

            let overTCP = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-A", "-t", "-d", server.connection.tcpConnectionString, "-c",
                    "SELECT inet_server_addr()::text || ':' || inet_server_port()",
                ]
            )
            #expect(overTCP.succeeded, "\(overTCP.standardError)")
            #expect(overTCP.standardOutput == "127.0.0.1/32:\(server.connection.port)\n")
        }
    }

    @Test("passes server settings through and applies the fast defaults")
    func appliesSettings() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.settings = [
            "max_connections": "37", "statement_timeout": "1234ms", "application_name": "it has spaces",
        ]
        try await PostgresTestServer.withServer(configuration) { server in
            let output = try await server.psql(
                """
                SHOW max_connections;
                SHOW statement_timeout;
                SHOW fsync;
                SHOW autovacuum;
                SHOW listen_addresses;
                """
            )
            #expect(output == "37\n1234ms\noff\noff\n127.0.0.1")
        }
    }

    @Test("keeps data and port across stop and start, and across restart")
    func stopStartKeepsDataAndPort() async throws {
        try await PostgresTestServer.withServer { server in
            let port = server.connection.port
            try await server.psql("CREATE TABLE kept (value int); INSERT INTO kept VALUES (42);")
            let firstPID = try postmasterPID(server)

            try await server.stop()
            #expect(!server.isRunning)
            #expect(!processExists(firstPID))
            #expect(
                await #expect(throws: PostgresTestServerError.self) { try await server.psql("SELECT 1") }?.code
                    == .toolFailed)

            try await server.start()
            #expect(server.isRunning)
            #expect(server.connection.port == port)
            #expect(try await server.psql("SELECT value FROM kept") == "42")
            let secondPID = try postmasterPID(server)
            #expect(secondPID != firstPID)

            try await server.restart(mode: .immediate)
            #expect(try await server.psql("SELECT value FROM kept") == "42")
            #expect(try await server.psql("SHOW port") == "\(port)")

            let error = await #expect(throws: PostgresTestServerError.self) { try await server.start() }
            #expect(error?.code == .invalidState)
        }
    }

    @Test("withServer stops the server and deletes its folder even when the body throws")
    func withServerCleansUpOnThrow() async throws {
        struct Planned: Error {}
        let seen = Captured()
        await #expect(throws: Planned.self) {
            try await PostgresTestServer.withServer { server in
                seen.directory = server.directory
                seen.pid = try postmasterPID(server)
                throw Planned()
            }
        }
        let directory = try #require(seen.directory)
        let pid = try #require(seen.pid)
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(!processExists(pid))
    }

    @Test("destroy stops and deletes everything, and the server cannot be started again")
    func destroyIsFinal() async throws {
        let server = try await PostgresTestServer.start()
        let pid = try postmasterPID(server)
        try await server.destroy()
        #expect(!FileManager.default.fileExists(atPath: server.directory))
        #expect(!processExists(pid))
        #expect(!server.isRunning)
        try await server.destroy()
        let error = await #expect(throws: PostgresTestServerError.self) { try await server.start() }
        #expect(error?.code == .invalidState)
    }

    @Test("a server dropped without destroy is stopped and deleted by its watchdog")
    func droppedServerIsCleanedUp() async throws {
        var server: PostgresTestServer? = try await PostgresTestServer.start()
        let directory = try #require(server?.directory)
        let pid = try postmasterPID(try #require(server))
        let cleanedUp = try #require(server).watchdogFinished()
        server = nil
        #expect(await cleanedUp())
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(!processExists(pid))
    }

    @Test("reports missing server programs with the package to install")
    func missingBinaries() async throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-postgres-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        var configuration = PostgresTestServer.Configuration()
        configuration.binarySearchPath = [empty.path]

        let error = await #expect(throws: PostgresTestServerError.self) {
            try await PostgresTestServer.start(configuration)
        }
        #expect(error?.code == .binariesNotFound)
        #expect(error?.message.contains("apt-get install postgresql") == true)
        #expect(error?.message.contains(empty.path) == true)
    }

    @Test("a role with a password is refused over TCP with a wrong password and accepted with the right one")
    func passwordRole() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.roles = [.init(name: "app", password: "right 'secret'")]
        configuration.database = "app_db"
        try await PostgresTestServer.withServer(configuration) { server in
            let wrong = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-A", "-t", "-c", "SELECT 1", "-d",
                    server.connection.connectionString(transport: .tcp, user: "app", password: "wrong"),
                ]
            )
            #expect(!wrong.succeeded)
            #expect(wrong.standardError.contains("password authentication failed for user \"app\""))

            let right = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-A", "-t", "-c", "SELECT current_user || '@' || current_database()", "-d",
                    server.connection.connectionString(transport: .tcp, user: "app", password: "right 'secret'"),
                ]
            )
            #expect(right.succeeded, "\(right.standardError)")
            #expect(right.standardOutput == "app@app_db\n")

            // The Unix socket trusts everyone, so set-up code never needs a password.
            #expect(try await server.psql("SELECT current_user", user: "app") == "app")
            // The log never shows the password.
            #expect(!server.log().contains("right 'secret'"))
        }
    }

    @Test("the superuser's password is required over TCP and hidden from the description")
    func superuserPassword() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.password = "hunter2"
        try await PostgresTestServer.withServer(configuration) { server in
            #expect(!server.connection.description.contains("hunter2"))
            #expect(server.connection.tcpConnectionString.contains("password=hunter2"))
            #expect(!server.connection.unixSocketConnectionString.contains("hunter2"))

            let right = try await server.runTool(
                "psql", arguments: ["-X", "-A", "-t", "-c", "SELECT 7", "-d", server.connection.tcpConnectionString]
            )
            #expect(right.standardOutput == "7\n", "\(right.standardError)")

            let wrong = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-c", "SELECT 1", "-d",
                    server.connection.connectionString(transport: .tcp, password: "hunter3"),
                ]
            )
            #expect(wrong.standardError.contains("password authentication failed for user \"postgres\""))
        }
    }

    @Test("loads pgbench's tables")
    func pgbenchInitializes() async throws {
        try await PostgresTestServer.withServer { server in
            try await server.pgbench(arguments: ["-i", "-s", "1", "-q"])
            #expect(try await server.psql("SELECT count(*) FROM pgbench_accounts") == "100000")
        }
    }

    @Test("rejects invalid configuration naming the field", arguments: invalidConfigurations())
    func invalidConfiguration(configuration: PostgresTestServer.Configuration, field: String) async throws {
        let error = await #expect(throws: PostgresTestServerError.self) {
            try await PostgresTestServer.start(configuration)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("`\(field)`") == true)
    }

    @Test("a failed start reports the log's tail and removes the folder")
    func failedStartReportsLog() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.settings = ["shared_buffers": "not-a-size"]
        let error = await #expect(throws: PostgresTestServerError.self) {
            try await PostgresTestServer.start(configuration)
        }
        #expect(error?.code == .startFailed)
        #expect(error?.logTail?.contains("shared_buffers") == true)
    }

    @Test("connection strings quote values as libpq requires")
    func connectionStringQuoting() {
        let details = PostgresTestServer.ConnectionDetails(
            socketDirectory: "/tmp/a b", port: 5432, user: "o'neil", database: "db", password: "p\\w"
        )
        #expect(details.unixSocketConnectionString == #"host='/tmp/a b' port=5432 user='o\'neil' dbname=db"#)
        #expect(
            details.tcpConnectionString == #"host=127.0.0.1 port=5432 user='o\'neil' dbname=db password='p\\w'"#
        )
        #expect(!details.description.contains("p\\w"))
        #expect(
            details.url(transport: .tcp, user: "u", password: "p@ss", database: "d")
                == "postgresql://u:p%40ss@127.0.0.1:5432/d"
        )
    }
}

/// Configurations with one bad field each, and the field's name as the error must give it.
private func invalidConfigurations() -> [(PostgresTestServer.Configuration, String)] {
    func changed(_ change: (inout PostgresTestServer.Configuration) -> Void) -> PostgresTestServer.Configuration {
        var configuration = PostgresTestServer.Configuration()
        change(&configuration)
        return configuration
    }
    return [
        (changed { $0.settings = ["bad name": "1"] }, "settings"),
        (changed { $0.user = "" }, "user"),
        (changed { $0.password = "two\nlines" }, "password"),
        (changed { $0.roles = [.init(name: "a\"b")] }, "roles[0].name"),
        (changed { $0.port = 70000 }, "port"),
        (changed { $0.startupTimeout = .zero }, "startupTimeout"),
    ]
}

/// The postmaster's process id, from `postmaster.pid`.
private func postmasterPID(_ server: PostgresTestServer) throws -> Int32 {
    let text = try String(contentsOfFile: server.dataDirectory + "/postmaster.pid", encoding: .utf8)
    return try #require(text.split(separator: "\n").first.flatMap { Int32($0) })
}

private func processExists(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0
}

/// Values captured inside a `withServer` body for checks after it returned.
private final class Captured: @unchecked Sendable {
    // Written inside the body and read after `withServer` returned, on the same task: never concurrently.
    var directory: String?
    var pid: Int32?
}

@Suite("PostgresTestServer descriptions")
struct PostgresTestServerDescriptionTests {
    @Test("configuration, role and connection details never print a password")
    func passwordsStayHidden() {
        var configuration = PostgresTestServer.Configuration(password: "s3cret-one")
        configuration.roles = [.init(name: "app", password: "s3cret-two")]
        let details = PostgresTestServer.ConnectionDetails(
            socketDirectory: "/tmp/x", port: 1, user: "u", database: "d", password: "s3cret-three"
        )
        var dumped = ""
        dump(configuration, to: &dumped)
        dump(details, to: &dumped)
        let texts = [
            String(describing: configuration), String(reflecting: configuration), String(describing: details),
            String(reflecting: details), String(describing: configuration.roles), dumped,
        ]
        for text in texts {
            #expect(!text.contains("s3cret"), "\(text)")
        }
    }
}
