import Foundation
import ReservoirPostgresTestKit
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("PostgresTestServer under faults")
struct PostgresTestServerFaultTests {
    @Test("a port taken before the server binds it is retried with a new port")
    func retriesPortCollision() async throws {
        let blocker = try PortBlocker()
        let picks = PortPicks([blocker.port])
        let server = try await PostgresTestServer.start(.init(), pickingPortsWith: { try picks.next() })
        defer { blocker.close() }
        do {
            #expect(picks.count == 2)
            #expect(server.connection.port != blocker.port)
            #expect(try await server.psql("SHOW port") == "\(server.connection.port)")
            #expect(server.log().contains("Address already in use"))
        } catch {
            try? await server.destroy()
            throw error
        }
        try await server.destroy()
    }

    @Test("a configured port that is taken fails with the log's tail")
    func configuredPortTaken() async throws {
        let blocker = try PortBlocker()
        defer { blocker.close() }
        var configuration = PostgresTestServer.Configuration()
        configuration.port = blocker.port
        let error = await #expect(throws: PostgresTestServerError.self) {
            try await PostgresTestServer.start(configuration)
        }
        #expect(error?.code == .startFailed)
        #expect(error?.logTail?.contains("Address already in use") == true)
    }

    @Test("a smart shutdown blocked by a client escalates after the timeout, and the server starts again")
    func smartShutdownEscalates() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.shutdownTimeout = .seconds(1)
        try await PostgresTestServer.withServer(configuration) { server in
            let sleeper = Task { try await server.runTool("psql", arguments: ["-X", "-c", "SELECT pg_sleep(60)"]) }
            try await waitUntilActive(server, query: "SELECT pg_sleep(60)")

            let error = await #expect(throws: PostgresTestServerError.self) { try await server.stop(mode: .smart) }
            #expect(error?.code == .stopTimedOut)
            #expect(!server.isRunning)
            let client = try await sleeper.value
            #expect(!client.succeeded)

            try await server.start()
            #expect(try await server.psql("SELECT 1") == "1")
        }
    }

    // A tool that ignored SIGTERM (a blocked signal inherited from a cooperative thread) would run for 5 minutes and
    // hit the time limit.
    @Test("cancelling a running tool stops it", .timeLimit(.minutes(1)))
    func cancelsTool() async throws {
        try await PostgresTestServer.withServer { server in
            let sleeper = Task { try await server.runTool("psql", arguments: ["-X", "-c", "SELECT pg_sleep(300)"]) }
            try await waitUntilActive(server, query: "SELECT pg_sleep(300)")
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
        }
    }

    @Test("start in a cancelled task throws CancellationError")
    func startCancelled() async throws {
        let result = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await PostgresTestServer.start()
        }.result
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test("a server without the template cluster runs initdb itself")
    func withoutTemplate() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.usesTemplateCluster = false
        configuration.user = "owner"
        configuration.password = "pw"
        try await PostgresTestServer.withServer(configuration) { server in
            #expect(try await server.psql("SELECT current_user") == "owner")
            #expect(FileManager.default.fileExists(atPath: server.directory + "/initdb.log"))
            let overTCP = try await server.runTool(
                "psql", arguments: ["-X", "-A", "-t", "-c", "SELECT 3", "-d", server.connection.tcpConnectionString]
            )
            #expect(overTCP.standardOutput == "3\n", "\(overTCP.standardError)")
        }
    }

    @Test("a temporary folder too long for the socket path is rejected")
    func longTemporaryDirectory() async throws {
        var configuration = PostgresTestServer.Configuration()
        configuration.temporaryDirectory = "/tmp/" + String(repeating: "x", count: 80)
        let error = await #expect(throws: PostgresTestServerError.self) {
            try await PostgresTestServer.start(configuration)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("`temporaryDirectory`") == true)
    }
}

/// Waits until the server shows `query` as active in `pg_stat_activity`: a bounded series of psql round trips.
private func waitUntilActive(_ server: PostgresTestServer, query: String) async throws {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = \(quoted(query))"
    for _ in 0..<500 {
        if try await server.psql(sql) == "1" { return }
        await Task.yield()
    }
    Issue.record("\(query) never became active")
    throw CancellationError()
}

private func quoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
}

/// Hands out the given ports, then free ones, counting the picks.
private final class PortPicks: Sendable {
    private let state: Mutex<(ports: [Int], count: Int)>

    init(_ ports: [Int]) {
        state = Mutex((ports, 0))
    }

    var count: Int { state.withLock { $0.count } }

    func next() throws -> Int {
        let given: Int? = state.withLock { state in
            state.count += 1
            return state.ports.isEmpty ? nil : state.ports.removeFirst()
        }
        return try given ?? PostgresTestServer.freeLoopbackPort()
    }
}

/// A listening socket on 127.0.0.1 that keeps a port taken.
private final class PortBlocker: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        #if canImport(Glibc) || canImport(Musl)
            let socketType = Int32(SOCK_STREAM.rawValue)
        #else
            let socketType = SOCK_STREAM
        #endif
        let fd = socket(AF_INET, socketType, 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(bound == 0 && listen(fd, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        _ = Glibc.close(descriptor)
    }
}
