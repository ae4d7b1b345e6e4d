import Foundation
import ArgumentParser

/// `reservoir advise`: a defensible pool size from a measured load curve.
public struct AdviseCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "advise",
        abstract: "Measure a database's throughput at increasing pool sizes and recommend a pool size.",
        discussion: """
            Runs a closed-loop load at pool sizes 1, 2, 4, … (up to --max-size and the server's free connections), \
            fits the Universal Scalability Law (contention σ, coherency κ), and recommends the smallest size that \
            reaches 90 % of the best throughput while p99 stays within 2× of the best p99, split among --instances \
            and capped by max_connections minus reserved slots. The statement runs read-only unless \
            --allow-writes is given. Writes an SVG report with the plots. Without --database-url it measures a \
            throwaway server loaded with pgbench's tables.
            """
    )

    @OptionGroup public var database: DatabaseOptions

    @Option(help: "The statement to measure (default: pgbench's point select on a throwaway server, else SELECT 1).")
    public var query: String?

    @Option(help: "Seconds measured at each pool size.")
    public var duration = Seconds(.seconds(2))

    @Option(help: "The largest pool size to measure (default: up to 64, within the server's free connections).")
    public var maxSize: Int?

    @Option(help: "Service instances that each run a pool against this database.")
    public var instances = 1

    @Option(help: "Connections to keep free besides superuser_reserved_connections (admins, migrations, others).")
    public var reserved = 0

    @Option(help: "Where to write the SVG report.")
    public var output = "reservoir-advise.svg"

    @Flag(help: "Measure a statement that writes (otherwise every connection is read-only and writes are refused).")
    public var allowWrites = false

    @Flag(help: "Print the advice as JSON instead of a table.")
    public var json = false

    public init() {}

    public func validate() throws {
        if let maxSize, !(4...10_000).contains(maxSize) {
            throw ValidationError("--max-size must be between 4 and 10000 (three sizes at least); got \(maxSize)")
        }
        guard (1...10_000).contains(instances) else {
            throw ValidationError("--instances must be between 1 and 10000; got \(instances)")
        }
        guard reserved >= 0 else {
            throw ValidationError("--reserved must not be negative; got \(reserved)")
        }
        if let query, query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("--query must not be empty")
        }
        guard !output.isEmpty else {
            throw ValidationError("--output must name a file")
        }
        _ = try database.connectionConfiguration()
    }

    public func run() async throws {
        var options = AdviseRunner.Options()
        options.connectionString = database.databaseURL
        options.query = query
        options.durationPerSize = duration.duration
        options.maximumSize = maxSize
        options.instances = instances
        options.reservedConnections = reserved
        options.reportPath = output
        options.allowWrites = allowWrites
        let json = self.json
        do {
            let (advice, _) = try await AdviseRunner(options: options).run { line in
                if json { printError(line) } else { print(line) }
            }
            if json {
                print(try AdviseRunner.json(advice))
            } else {
                print("")
                for line in AdviseRunner.table(advice) { print(line) }
                print("")
                print("report: \(output)")
            }
        } catch let error as any CustomStringConvertible {
            printError("reservoir advise: \(error.description)")
            throw ExitCode.failure
        }
    }
}
