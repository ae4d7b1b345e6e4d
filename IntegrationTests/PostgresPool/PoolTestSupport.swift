import Foundation
import Glibc
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import Reservoir
import ReservoirTestKit
import Synchronization
import Testing

/// Runs a PostgresPool against a throwaway server for one test, and checks the invariants every test ends with.
enum PoolTest {
    /// Creates a pool (unique name, so its connections can be told apart in `pg_stat_activity`), runs it, runs
    /// `body`, then checks that no lease is outstanding and that the server holds no more of the pool's
    /// connections than its maximum, and shuts it down gracefully.
    static func withPool<Result: Sendable>(
        server givenServer: PostgresTestServer? = nil,
        configure: (inout PostgresPool.Configuration) throws -> Void = { _ in },
        logs: LogCapture? = nil,
        metrics: RecordingMetricsFactory? = nil,
        checkServerConnections: Bool = true,
        _ body: (PostgresPool) async throws -> Result
    ) async throws -> Result {
        let server: PostgresTestServer
        if let givenServer { server = givenServer } else { server = try await TestDatabase.server.value }
        var configuration = PostgresPool.Configuration(
            connection: try .init(connectionString: server.connection.unixSocketConnectionString),
            name: TestDatabase.uniqueName("pool")
        )
        configuration.pool.acquireTimeout = .seconds(20)
        configuration.pool.creationBackoff = .exponential(initial: .milliseconds(10), maximum: .milliseconds(200))
        try configure(&configuration)
        var logger = Logger(label: "pool-test") { label in logs.map { $0 as any LogHandler } ?? SwiftLogNoOpLogHandler() }
        logger.logLevel = .debug
        let pool = try PostgresPool(configuration: configuration, logger: logger, metricsFactory: metrics ?? RecordingMetricsFactory())
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            do {
                let result = try await body(pool)
                try await pool.resourcePool.expectNoOutstandingLeases()
                if checkServerConnections, server.isRunning {
                    let connections = try await serverConnections(of: pool)
                    #expect(connections <= configuration.pool.maximumSize)
                }
                pool.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                pool.triggerGracefulShutdown()
                group.cancelAll()
                throw error
            }
        }
    }

    /// The pool's connections the server sees (by `application_name`), counted through the pool itself so that the
    /// count also works on a server with very few connection slots.
    static func serverConnections(of pool: PostgresPool) async throws -> Int {
        let name = pool.configuration.applicationName
        let rows = try await pool.query("SELECT count(*)::int4 FROM pg_stat_activity WHERE application_name = \(name)")
        return Int(try rows.singleValue(Int32.self) ?? 0)
    }

    /// Runs `query` on a separate admin connection (superuser) until it returns true, at most `attempts` times.
    ///
    /// Each attempt is a round trip to the server: this waits for the server's state (a backend having exited, a
    /// statement having started), not for time.
    static func waitOnServer(
        _ query: PostgresQuery,
        attempts: Int = 20_000,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await TestDatabase.withConnection { admin in
            for _ in 0..<attempts {
                if try await admin.query(query).singleValue(Bool.self) == true { return }
            }
            Issue.record("the server never reached the expected state: \(query.sql)", sourceLocation: sourceLocation)
        }
    }

    /// A server of its own, for tests that stop it or limit its connections.
    static func startServer(settings: [String: String] = [:]) async throws -> PostgresTestServer {
        var configuration = PostgresTestServer.Configuration()
        configuration.settings = settings
        return try await PostgresTestServer.start(configuration)
    }
}

/// A log handler that keeps every record, for assertions on warnings and their metadata.
///
/// `@unchecked Sendable`: `records` is protected by its `Mutex`; `metadata` and `logLevel` are only set before the
/// logger is shared (swift-log's handler contract).
final class LogCapture: LogHandler, @unchecked Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let storage = Mutex<[Record]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init() {}

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let record = Record(
            level: event.level,
            message: "\(event.message)",
            metadata: merged.mapValues { "\($0)" }
        )
        storage.withLock { $0.append(record) }
    }

    var records: [Record] { storage.withLock { $0 } }

    func records(atLeast level: Logger.Level) -> [Record] { records.filter { $0.level >= level } }
}

/// A TCP listener that completes the handshake (through the kernel's backlog) but never answers: connecting to it
/// hangs until the client's connect timeout.
final class BlackHoleListener: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}
