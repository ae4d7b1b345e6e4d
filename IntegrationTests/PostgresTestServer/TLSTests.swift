import Foundation
import Logging
import ReservoirPostgres
import Testing

@testable import ReservoirPostgresTestKit

/// libpq's `sslmode` against the throwaway server with a certificate that `openssl` makes for the test: what
/// `docs/postgres.md` ("TLS") recommends, checked.
@Suite("TLS to the throwaway server")
struct TLSTests {
    /// The name in the server's certificate; the server is reached at 127.0.0.1 (libpq's `hostaddr`).
    static let serverName = "db.reservoir.test"

    @Test("sslmode=require encrypts, and verify-full with the right root certificate and host name connects")
    func requireAndVerifyFull() async throws {
        try await withTLSServer { server, certificates in
            let required = try await connect(server, ["sslmode": "require"])
            #expect(try await isEncrypted(required))
            await required.close()

            let verified = try await connect(
                server,
                [
                    "host": Self.serverName, "hostaddr": "127.0.0.1", "sslmode": "verify-full",
                    "sslrootcert": certificates.rootCertificate,
                ]
            )
            #expect(try await isEncrypted(verified))
            await verified.close()
        }
    }

    @Test("verify-full refuses a server whose certificate another authority signed, with a clear error")
    func wrongRootCertificate() async throws {
        try await withTLSServer { server, certificates in
            let error = await #expect(throws: PostgresError.self) {
                try await connect(
                    server,
                    [
                        "host": Self.serverName, "hostaddr": "127.0.0.1", "sslmode": "verify-full",
                        "sslrootcert": certificates.otherRootCertificate,
                    ]
                )
            }
            let text = "\(error.map(String.init(describing:)) ?? "")"
            #expect(text.contains("certificate verify failed"), "\(text)")
            #expect(!text.contains(server.connection.password ?? "-"))
        }
    }

    @Test("verify-full refuses a host name the certificate does not name, with a clear error")
    func hostNameMismatch() async throws {
        try await withTLSServer { server, certificates in
            let error = await #expect(throws: PostgresError.self) {
                try await connect(
                    server,
                    ["host": "127.0.0.1", "sslmode": "verify-full", "sslrootcert": certificates.rootCertificate]
                )
            }
            let text = "\(error.map(String.init(describing:)) ?? "")"
            // libpq: server certificate for "db.reservoir.test" (and 1 other name) does not match host name "127.0.0.1"
            #expect(text.contains("server certificate for \"\(Self.serverName)\""), "\(text)")
            #expect(text.contains("does not match host name \"127.0.0.1\""), "\(text)")
        }
    }

    @Test("a server that requires TLS refuses a plain connection")
    func requiredTLSRefusesPlain() async throws {
        try await withTLSServer(isRequired: true) { server, _ in
            let error = await #expect(throws: PostgresError.self) {
                try await connect(server, ["sslmode": "disable"])
            }
            let text = "\(error.map(String.init(describing:)) ?? "")"
            #expect(text.contains("no encryption"), "\(text)")
            let preferred = try await connect(server, [:])  // libpq's default, sslmode=prefer
            #expect(try await isEncrypted(preferred))
            await preferred.close()
        }
    }
}

/// The files `openssl` made: a root certificate that signed the server's, and an unrelated one.
struct TestCertificates {
    var rootCertificate: String
    var otherRootCertificate: String
    var serverCertificate: String
    var serverKey: String
}

/// Makes the certificates in a new folder, starts a server with them, runs `body`, and removes both.
private func withTLSServer(
    isRequired: Bool = false,
    _ body: (PostgresTestServer, TestCertificates) async throws -> Void
) async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let certificates = try await makeCertificates(in: folder)
    var configuration = PostgresTestServer.Configuration()
    configuration.tls = .init(
        certificateFile: certificates.serverCertificate,
        keyFile: certificates.serverKey,
        isRequired: isRequired
    )
    try await PostgresTestServer.withServer(configuration) { server in
        try await body(server, certificates)
    }
}

/// Connects as the superuser over TCP with the server's password and the given libpq keywords.
private func connect(_ server: PostgresTestServer, _ keywords: [String: String]) async throws -> PostgresConnection {
    var configuration = try PostgresConnection.Configuration(
        host: "127.0.0.1", port: server.connection.port, user: server.connection.user,
        password: server.connection.password, database: "postgres"
    )
    for (keyword, value) in keywords.sorted(by: { $0.key < $1.key }) {
        try configuration.set(keyword, to: value)
    }
    return try await PostgresConnection.connect(configuration: configuration, logger: Logger(label: "tls-test"))
}

private func isEncrypted(_ connection: PostgresConnection) async throws -> Bool {
    try await connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").singleValue(Bool.self)
        == true
}

/// Runs `openssl` to make a root certificate authority, a server certificate it signs for ``TLSTests/serverName``,
/// and a second, unrelated authority. EC keys (P-256): made in milliseconds.
///
/// Through the test kit's `ChildProcess`, not Foundation's `Process`: `Process.waitUntilExit` missed an `openssl`
/// exit for the whole run once, while a server started by a parallel test held the socket it watches.
private func makeCertificates(in folder: String) async throws -> TestCertificates {
    func openssl(_ arguments: [String]) async throws {
        let output = try await ChildProcess.run(
            executable: "/usr/bin/env",
            arguments: ["openssl"] + arguments,
            environment: ProcessInfo.processInfo.environment,
            workingDirectory: folder,
            scratchDirectory: folder
        )
        guard output.termination.succeeded else {
            throw OpenSSLFailed(arguments: arguments, output: output.standardError)
        }
    }
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for authority in ["root", "other-root"] {
        try await openssl(
            ["req", "-x509"] + key + [
                "-keyout", "\(authority).key", "-out", "\(authority).crt", "-days", "2",
                "-subj", "/CN=Reservoir test \(authority) CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ]
        )
    }
    try await openssl(
        ["req", "-new"] + key + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=\(TLSTests.serverName)"])
    try "subjectAltName=DNS:\(TLSTests.serverName)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        .write(toFile: folder + "/server.ext", atomically: true, encoding: .utf8)
    try await openssl([
        "x509", "-req", "-in", "server.csr", "-CA", "root.crt", "-CAkey", "root.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
    ])
    return TestCertificates(
        rootCertificate: folder + "/root.crt",
        otherRootCertificate: folder + "/other-root.crt",
        serverCertificate: folder + "/server.crt",
        serverKey: folder + "/server.key"
    )
}

private struct OpenSSLFailed: Error, CustomStringConvertible {
    var arguments: [String]
    var output: String
    var description: String { "openssl \(arguments.joined(separator: " ")) failed: \(output)" }
}
