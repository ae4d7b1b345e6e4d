import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension PostgresTestServer {
    /// What a client tool printed and how it ended.
    public struct ToolOutput: Sendable, Hashable {
        /// The exit status (or the signal number when ``killedBySignal`` is true).
        public var exitStatus: Int32
        /// Whether a signal ended the tool.
        public var killedBySignal: Bool
        /// Everything the tool wrote to stdout.
        public var standardOutput: String
        /// Everything the tool wrote to stderr.
        public var standardError: String

        /// Whether the tool exited with status 0.
        public var succeeded: Bool { exitStatus == 0 && !killedBySignal }
    }

    /// Runs a PostgreSQL client tool (`psql`, `pgbench`, `pg_dump`, `pg_isready`, …) against this server.
    ///
    /// The tool is found like the server programs (its folder first). It runs as this process's user with a clean
    /// libpq environment: `PGHOST` (the Unix socket's folder), `PGPORT`, `PGUSER` and `PGDATABASE` point at this
    /// server, `PGPASSFILE` names a password file with the superuser's TCP password, other `PG*` variables are
    /// removed, and `LC_ALL=C` keeps messages in English; `environment` is applied on top (for example
    /// `["PGHOST": "127.0.0.1"]` to go over TCP as the superuser, adding `"PGPASSWORD": "…"` for another role).
    /// Output is collected in files, so large outputs never block the tool. Cancelling the task sends the tool
    /// SIGTERM, waits for it to exit, and throws `CancellationError`.
    ///
    /// - Parameters:
    ///   - name: The program's file name, such as `"pgbench"`.
    ///   - arguments: Its arguments (no shell involved).
    ///   - environment: Variables set on top of the defaults above.
    ///   - input: Text for the tool's stdin, or `nil` for none.
    /// - Returns: The tool's output and exit status; a non-zero status is not an error here.
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/toolNotFound``, or
    ///   ``PostgresTestServerError/Code-swift.struct/fileSystem`` when it cannot be run; `CancellationError`.
    public func runTool(
        _ name: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        input: String? = nil
    ) async throws -> ToolOutput {
        guard !name.contains("/"), !name.isEmpty else {
            throw PostgresTestServerError(
                .invalidConfiguration, message: "The tool name `\(name)` must be a plain file name.")
        }
        guard let executable = cluster.binaries.tool(named: name) else {
            throw PostgresTestServerError(
                .toolNotFound,
                message: "The PostgreSQL client tool `\(name)` was not found in "
                    + cluster.binaries.toolDirectories.joined(separator: ":")
                    + ". Install the `postgresql` package (Debian/Ubuntu: `apt-get install postgresql`)."
            )
        }
        var toolEnvironment = Cluster.cleanEnvironment(ProcessInfo.processInfo.environment)
        toolEnvironment["PGHOST"] = connection.socketDirectory
        toolEnvironment["PGPORT"] = String(connection.port)
        toolEnvironment["PGUSER"] = connection.user
        toolEnvironment["PGDATABASE"] = connection.database
        // The superuser's TCP password, for tools pointed at 127.0.0.1 (the socket needs none).
        toolEnvironment["PGPASSFILE"] = cluster.passwordFile
        toolEnvironment.merge(environment) { _, given in given }

        let output: ChildProcess.Output
        do {
            output = try await ChildProcess.run(
                executable: executable,
                arguments: arguments,
                environment: toolEnvironment,
                workingDirectory: cluster.directory,
                input: input,
                scratchDirectory: cluster.directory
            )
        } catch let error as PostgresTestServerError {
            throw error
        } catch {
            throw PostgresTestServerError(.fileSystem, message: "Could not run \(executable).", underlying: error)
        }
        try Task.checkCancellation()
        return ToolOutput(
            exitStatus: output.termination.status,
            killedBySignal: output.termination.killedBySignal,
            standardOutput: output.standardOutput,
            standardError: output.standardError
        )
    }

    /// Runs SQL through `psql` on the Unix socket and returns its unaligned, tuples-only output.
    ///
    /// Runs `psql -X -q -A -t -v ON_ERROR_STOP=1` with the SQL on stdin, so several statements may be given and the
    /// first error stops the script. Each row is one line, columns separated by `|`; the trailing line break is
    /// removed. `SELECT 1 + 1` returns `"2"`.
    ///
    /// - Parameters:
    ///   - sql: One or more SQL statements.
    ///   - database: The database; `nil` for the configured one.
    ///   - user: The role to connect as; `nil` for the configured superuser.
    /// - Returns: The output rows.
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/toolFailed`` with psql's error output when a statement
    ///   fails; what ``runTool(_:arguments:environment:input:)`` throws.
    @discardableResult
    public func psql(_ sql: String, database: String? = nil, user: String? = nil) async throws -> String {
        var environment: [String: String] = [:]
        if let database { environment["PGDATABASE"] = database }
        if let user { environment["PGUSER"] = user }
        let output = try await runTool(
            "psql",
            arguments: ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            environment: environment,
            input: sql
        )
        guard output.succeeded else {
            throw PostgresTestServerError(
                .toolFailed,
                message: "psql failed (exit status \(output.exitStatus)).",
                logTail: Cluster.lastLines(of: output.standardError, count: 20)
            )
        }
        var text = output.standardOutput
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// Runs `pgbench` against this server, for example `["-i", "-s", "10"]` to load its tables at scale 10, or
    /// `["-S", "-M", "prepared", "-c", "8", "-T", "10"]` to measure.
    ///
    /// - Parameters:
    ///   - arguments: pgbench's arguments; the connection comes from the environment (Unix socket).
    ///   - environment: Variables set on top of the server's (see ``runTool(_:arguments:environment:input:)``).
    /// - Returns: pgbench's output (its report is on stdout, progress on stderr).
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/toolFailed`` with pgbench's error output on a non-zero
    ///   exit; what ``runTool(_:arguments:environment:input:)`` throws.
    @discardableResult
    public func pgbench(arguments: [String], environment: [String: String] = [:]) async throws -> ToolOutput {
        let output = try await runTool("pgbench", arguments: arguments, environment: environment)
        guard output.succeeded else {
            throw PostgresTestServerError(
                .toolFailed,
                message: "pgbench failed (exit status \(output.exitStatus)).",
                logTail: Cluster.lastLines(of: output.standardError, count: 20)
            )
        }
        return output
    }

    /// The server's log so far (all starts), or its last `lines` lines.
    ///
    /// - Parameter lines: How many lines from the end; `nil` for the whole log.
    /// - Returns: The log text.
    public func log(lastLines lines: Int? = nil) -> String {
        guard let lines else { return Cluster.text(ofFile: logFile) }
        return Cluster.tail(ofFile: logFile, lines: lines)
    }
}
