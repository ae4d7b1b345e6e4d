import ArgumentParser

/// The `reservoir` command: a live demo of the pool, a pool-size advisor, and a connection check.
public struct ReservoirCLI: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reservoir",
        abstract: "Reservoir's operator tool: a live pool demo, pool sizing from a measured load curve, and a check.",
        discussion: """
            With no --database-url, `demo` and `advise` start a throwaway PostgreSQL server in a temporary folder \
            and delete it when they end (the server binaries come from the `postgresql` package).
            """,
        subcommands: [DemoCommand.self, AdviseCommand.self, CheckCommand.self]
    )

    public init() {}
}

/// Options shared by the commands that connect to a database.
public struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "A libpq connection string or URI (postgresql://user@host:port/db or 'host=… dbname=…').",
            discussion: "libpq's environment defaults (PGHOST, PGPORT, PGUSER, PGPASSWORD, …) fill in what it leaves "
                + "out. The password is never printed.",
            valueName: "url"
        )
    )
    public var databaseURL: String?

    public init() {}
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
