import ArgumentParser
import Foundation

/// The `reservoir` command: a live demo of the pool, a pool-size advisor, and a connection check.
public struct ReservoirCLI: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reservoir",
        abstract: "Reservoir's operator tool: a live pool demo, pool sizing from a measured load curve, and a check.",
        discussion: """
            The database comes from --database-url, --database-url-file or the RESERVOIR_DATABASE_URL \
            environment variable (the first given wins; the last two keep a password out of `ps`). \
            With none of them, `demo` and `advise` start a throwaway PostgreSQL server in a temporary folder \
            and delete it when they end (the server binaries come from the `postgresql` package).
            """,
        subcommands: [DemoCommand.self, AdviseCommand.self, CheckCommand.self]
    )

    public init() {}
}

/// Options shared by the commands that connect to a database.
///
/// The connection string can hold a password, and a command line is visible to every local user (`ps`), so it can
/// also come from a file (`--database-url-file`) or from the environment (`RESERVOIR_DATABASE_URL`); the first of
/// `--database-url`, `--database-url-file`, `RESERVOIR_DATABASE_URL` that is given wins.
public struct DatabaseOptions: ParsableArguments {
    /// The environment variable read when neither option is given.
    public static let environmentVariable = "RESERVOIR_DATABASE_URL"

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "A libpq connection string or URI (postgresql://user@host:port/db or 'host=… dbname=…').",
            discussion: "Visible to other local users through `ps` while the command runs: for a URL with a "
                + "password, use --database-url-file or the RESERVOIR_DATABASE_URL environment variable instead "
                + "(or leave the password to PGPASSWORD or ~/.pgpass). libpq's environment defaults (PGHOST, "
                + "PGPORT, PGUSER, PGPASSWORD, …) fill in what it leaves out. The password is never printed.",
            valueName: "url"
        )
    )
    public var databaseURL: String?

    @Option(
        name: .customLong("database-url-file"),
        help: ArgumentHelp(
            "A file holding the connection string or URI (read once; surrounding blank space is ignored).",
            discussion: "Keeps the password off the command line. Without --database-url and this option, the "
                + "RESERVOIR_DATABASE_URL environment variable is used when it is set.",
            valueName: "path"
        )
    )
    public var databaseURLFile: String?

    public init() {}

    /// Resolves the connection string from the option, the file or the environment, in that order.
    public mutating func validate() throws {
        try resolve(environment: ProcessInfo.processInfo.environment)
    }

    mutating func resolve(environment: [String: String]) throws {
        if databaseURL != nil, databaseURLFile != nil {
            throw ValidationError("give either --database-url or --database-url-file, not both")
        }
        if let path = databaseURLFile {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
            else {
                throw ValidationError("--database-url-file: cannot read \(path)")
            }
            let url = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !url.isEmpty else { throw ValidationError("--database-url-file: \(path) is empty") }
            databaseURL = url
        } else if databaseURL == nil, let url = environment[Self.environmentVariable],
            !url.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        {
            databaseURL = url.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}

/// A number of seconds given on the command line, checked to be positive and finite.
public struct Seconds: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    /// The duration.
    public var duration: Duration

    public init?(argument: String) {
        guard let value = Double(argument), value.isFinite, value > 0, value <= 86_400 else { return nil }
        duration = .nanoseconds(Int64((value * 1e9).rounded()))
    }

    public init(_ duration: Duration) {
        self.duration = duration
    }

    public var description: String {
        let (seconds, attoseconds) = duration.components
        return attoseconds == 0 ? "\(seconds)" : "\(Double(seconds) + Double(attoseconds) * 1e-18)"
    }

    public var defaultValueDescription: String { description }
}
