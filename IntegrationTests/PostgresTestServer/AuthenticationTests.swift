import Foundation
import Testing

@testable import ReservoirPostgresTestKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The throwaway server admits no one but its creator: trust only on the private socket folder, a generated
/// password over TCP.
@Suite("PostgresTestServer authentication")
struct AuthenticationTests {
    @Test("TCP needs the generated password; with it, the connection details connect")
    func tcpNeedsThePassword() async throws {
        try await PostgresTestServer.withServer { server in
            let password = try #require(server.connection.password)
            #expect(password.count == 32)
            #expect(!server.connection.description.contains(password))
            #expect(server.connection.tcpConnectionString.contains("password=\(password)"))

            var withoutPassword = server.connection
            withoutPassword.password = nil
            // No password file either: what another local user has.
            let refused = try await server.runTool(
                "psql",
                arguments: ["-X", "-A", "-t", "-c", "SELECT 1", "-d", withoutPassword.tcpConnectionString],
                environment: ["PGPASSFILE": "/dev/null"]
            )
            #expect(!refused.succeeded)
            #expect(refused.standardError.contains("no password supplied"), "\(refused.standardError)")

            let wrong = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-c", "SELECT 1", "-d",
                    server.connection.connectionString(transport: .tcp, password: "guess"),
                ]
            )
            #expect(wrong.standardError.contains("password authentication failed for user \"postgres\""))

            let accepted = try await server.runTool(
                "psql",
                arguments: ["-X", "-A", "-t", "-c", "SELECT 5", "-d", server.connection.tcpConnectionString],
                environment: ["PGPASSFILE": "/dev/null"]
            )
            #expect(accepted.standardOutput == "5\n", "\(accepted.standardError)")

            // The tools started by the server find the password themselves (PGPASSFILE), as pgbench over TCP needs.
            let tool = try await server.runTool(
                "psql", arguments: ["-X", "-A", "-t", "-c", "SELECT 6"], environment: ["PGHOST": "127.0.0.1"]
            )
            #expect(tool.standardOutput == "6\n", "\(tool.standardError)")
            #expect(!server.log().contains(password))
        }
    }

    @Test("a role without a password cannot log in over TCP, only over the private socket")
    func passwordlessRoleIsSocketOnly() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.roles = [.init(name: "local_only")]
        try await PostgresTestServer.withServer(configuration) { server in
            let overTCP = try await server.runTool(
                "psql",
                arguments: [
                    "-X", "-c", "SELECT 1", "-d",
                    server.connection.connectionString(transport: .tcp, user: "local_only"),
                ],
                environment: ["PGPASSFILE": "/dev/null"]
            )
            #expect(!overTCP.succeeded)
            #expect(try await server.psql("SELECT current_user", user: "local_only") == "local_only")
        }
    }

    @Test("another local user can reach neither the socket nor, without the password, the TCP port")
    func anotherUserIsRefused() async throws {
        // Switching users needs root (CI runs as root); elsewhere the TCP check above covers the port.
        guard geteuid() == 0,
            let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { return }
        try await PostgresTestServer.withServer { server in
            let psql = server.binaryDirectory + "/psql"
            func asNobody(_ connectionString: String) async throws -> (status: Int32, error: String) {
                let output = try await ChildProcess.run(
                    executable: setpriv,
                    arguments: [
                        "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", psql, "-X", "-c", "SELECT 1",
                        "-d", connectionString,
                    ],
                    environment: ["PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"],
                    workingDirectory: "/",
                    scratchDirectory: FileManager.default.temporaryDirectory.path
                )
                return (output.termination.killedBySignal ? -1 : output.termination.status, output.standardError)
            }
            var withoutPassword = server.connection
            withoutPassword.password = nil
            let tcp = try await asNobody(withoutPassword.tcpConnectionString)
            #expect(tcp.status != 0)
            #expect(tcp.error.contains("no password supplied"), "\(tcp.error)")

            let socket = try await asNobody(server.connection.unixSocketConnectionString)
            #expect(socket.status != 0)
            #expect(socket.error.contains("Permission denied"), "\(socket.error)")
        }
    }
}
