import Foundation
import Glibc
import ReservoirPostgres
import ReservoirPostgresTestKit
import Testing

@Suite("Connecting")
struct ConnectTests {
    @Test("a wrong port fails with a clear connection error")
    func wrongPort() async throws {
        let server = try await TestDatabase.server.value
        var configuration = try PostgresConnection.Configuration(
            host: "127.0.0.1", port: freePort(), user: "app", password: TestDatabase.appPassword, database: "postgres"
        )
        configuration.connectTimeout = .seconds(5)
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: configuration)
        }
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("refused"))
        #expect(!error.description.contains(TestDatabase.appPassword))
        _ = server
    }

    @Test("a wrong password fails with the server's message and never shows the password")
    func wrongPassword() async throws {
        let server = try await TestDatabase.server.value
        let wrong = "Wrong-Pass-9931"
        let configuration = try PostgresConnection.Configuration(
            host: "127.0.0.1", port: server.connection.port, user: "app", password: wrong, database: "postgres"
        )
        #expect(!configuration.description.contains(wrong))
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: configuration)
        }
        #expect(error.code == .connectionRejected)
        #expect(error.sqlState == .invalidPassword)
        #expect(error.message.contains("password authentication failed"))
        #expect(!error.description.contains(wrong))
        // The right password works over TCP.
        let right = try PostgresConnection.Configuration(
            connectionString: "postgresql://app:\(TestDatabase.appPassword)@127.0.0.1:\(server.connection.port)/postgres"
        )
        #expect(!right.description.contains(TestDatabase.appPassword))
        let connection = try await PostgresConnection.connect(configuration: right)
        #expect(try await connection.query("SELECT current_user::text").singleValue(String.self) == "app")
        await connection.close()
    }

    @Test("bad connection strings are rejected before connecting, with libpq's message and no password")
    func badConnectionStrings() throws {
        let unknown = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: "host=localhost password=hunter2 bogus=1")
        }
        #expect(unknown.code == .invalidConfiguration)
        #expect(unknown.message.contains("bogus"))
        #expect(!unknown.description.contains("hunter2"))
        let unterminated = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: "host=localhost password='hunter2")
        }
        #expect(unterminated.code == .invalidConfiguration)
        #expect(!unterminated.description.contains("hunter2"))
        let uri = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: "postgresql://me:hunter2@host/db?nonsense=1")
        }
        #expect(uri.message.contains("nonsense"))
        #expect(!uri.description.contains("hunter2"))
        let port = try #require(throws: PostgresError.self) { try PostgresConnection.Configuration(port: 70_000) }
        #expect(port.message.hasPrefix("port"))
        var configuration = try PostgresConnection.Configuration(host: "db")
        #expect(throws: PostgresError.self) { try configuration.set("no_such_keyword", to: "1") }
        try configuration.set("sslmode", to: "disable")
        #expect(configuration["sslmode"] == "disable")
    }

    @Test("a server that never answers hits the connect timeout")
    func connectTimeout() async throws {
        // A listening socket that nobody accepts from: the TCP handshake completes, the server never speaks.
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        listen(descriptor, 1)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        var configuration = try PostgresConnection.Configuration(host: "127.0.0.1", port: port, user: "x")
        try configuration.set("sslmode", to: "disable")
        configuration.connectTimeout = .milliseconds(300)
        let clock = ContinuousClock()
        let start = clock.now
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect(configuration: configuration)
        }
        #expect(error.code == .connectTimeout)
        // Without the timeout this never ends (the listener never answers); the bound leaves room for a loaded
        // machine, where all tests start at once (3.95 s was seen in CI with a bound of 3 s).
        #expect(clock.now - start < .seconds(10))
    }

    @Test("libpq environment defaults fill in what the configuration leaves out")
    func environmentDefaults() async throws {
        let server = try await TestDatabase.server.value
        // Only the socket directory is given; the port comes from the configuration, the rest from defaults.
        let configuration = try PostgresConnection.Configuration(
            host: server.connection.socketDirectory, port: server.connection.port, user: "postgres"
        )
        let connection = try await PostgresConnection.connect(configuration: configuration)
        #expect(try await connection.query("SELECT current_database()::text").singleValue(String.self) == "postgres")
        await connection.close()
    }
}

/// A loopback port nothing listens on (bound, then released).
func freePort() -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
