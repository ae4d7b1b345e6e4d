import ArgumentParser

/// `reservoir demo`: a live view of a pool under a mixed workload.
public struct DemoCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a mixed workload through a PostgresPool and watch the pool live.",
        discussion: """
            Point reads, transfers in transactions and an occasional slow query from many clients, plus three \
            planted faults the pool catches: a lease dropped without release, a lease held past the leak \
            threshold, and a connection returned inside a transaction. Without --database-url it starts a \
            throwaway PostgreSQL server and deletes it at the end. When standard output is not a terminal it \
            prints one plain line a second instead of the live view.
            """
    )

    @OptionGroup public var database: DatabaseOptions

    @Flag(help: "With --database-url: create a demo table and run transfers (it is dropped at the end).")
    public var allowWrites = false

    @Option(help: "How long the workload runs, in seconds.")
    public var duration = Seconds(.seconds(20))

    @Option(help: "The pool's maximum size.")
    public var poolSize = 8

    @Option(help: "Concurrent clients of the pool.")
    public var clients = 24

    @Option(help: "The database's knee from `reservoir advise`: the sizing line says whether more connections help.")
    public var knee: Int?

    @Flag(help: "Let the pool find its own size up to --pool-size; the live view shows the effective maximum.")
    public var selfSizing = false

    public init() {}

    public func validate() throws {
        guard (1...1_000).contains(poolSize) else {
            throw ValidationError("--pool-size must be between 1 and 1000; got \(poolSize)")
        }
        guard (1...10_000).contains(clients) else {
            throw ValidationError("--clients must be between 1 and 10000; got \(clients)")
        }
        if allowWrites, database.databaseURL == nil {
            throw ValidationError("--allow-writes needs --database-url (the throwaway server always allows writes)")
        }
        if let knee, knee < 1 {
            throw ValidationError("--knee must be at least 1; got \(knee)")
        }
        _ = try database.connectionConfiguration()
    }

    public func run() async throws {
        var options = DemoRunner.Options()
        options.connectionString = database.databaseURL
        options.allowWrites = allowWrites
        options.duration = duration.duration
        options.poolSize = poolSize
        options.clients = clients
        options.throughputKnee = knee
        options.selfSizing = selfSizing
        do {
            _ = try await DemoRunner(options: options).run(output: StandardOutput())
        } catch let error as any CustomStringConvertible {
            printError("reservoir demo: \(error.description)")
            throw ExitCode.failure
        }
    }
}
