#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import ReservoirPostgres

/// `reservoir check`: connects and verifies what a pool relies on.
public struct CheckCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Connect to a database and verify the settings a connection pool relies on.",
        discussion: """
            Prints the server version, max_connections, the connections open now by application_name, and what \
            to change. Exits with status 1 when it cannot connect; the message never contains the password.
            """
    )

    @OptionGroup public var database: DatabaseOptions

    public init() {}

    public func validate() throws {
        _ = try database.connectionConfiguration()
    }

    public func run() async throws {
        let configuration = try database.connectionConfiguration()
        do {
            let report = try await DatabaseCheck.run(configuration: configuration, logger: Logger.silent)
            for line in report.lines { print(line) }
        } catch let error as PostgresError {
            printError("reservoir check: cannot use \(configuration.redactedTarget): \(error.message)")
            throw ExitCode.failure
        }
    }
}

extension DatabaseOptions {
    /// The connection configuration from `--database-url`, or libpq's environment defaults without it.
    ///
    /// - Throws: `ValidationError` with libpq's own message when the string does not parse (never the password).
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        do {
            return try PostgresConnection.Configuration(connectionString: databaseURL ?? "")
        } catch let error as PostgresError {
            throw ValidationError("--database-url: \(error.message)")
        }
    }
}

extension PostgresConnection.Configuration {
    /// `user@host:port/dbname` from the fields given (libpq fills in the rest from its defaults), for messages.
    var redactedTarget: String {
        let user = self["user"].map { "\($0)@" } ?? ""
        let host = self["host"] ?? self["hostaddr"] ?? "(default host)"
        let port = self["port"].map { ":\($0)" } ?? ""
        let database = self["dbname"].map { "/\($0)" } ?? ""
        return user + host + port + database
    }
}

extension Logger {
    /// A logger that drops everything: the command prints its own output.
    static let silent = Logger(label: "reservoir", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// Writes a line to standard error.
func printError(_ line: String) {
    var standardError = StandardError()
    print(line, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)  // one write(2) per line: lines from several tasks never interleave
        _ = bytes.withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
