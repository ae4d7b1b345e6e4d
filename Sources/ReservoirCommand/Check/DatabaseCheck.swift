import Logging
import ReservoirPostgres

/// What `reservoir check` found about a database.
public struct CheckReport: Sendable, Hashable {
    /// How serious a finding is.
    public enum Level: String, Sendable, Hashable {
        /// As a pool needs it.
        case ok
        /// Works, but an operator should look.
        case warning
    }

    /// One verified setting.
    public struct Finding: Sendable, Hashable {
        /// How serious it is.
        public var level: Level
        /// What was found and, for a warning, what to do.
        public var message: String
    }

    /// `server_version`.
    public var serverVersion: String
    /// `max_connections`.
    public var maxConnections: Int
    /// `superuser_reserved_connections`.
    public var reservedConnections: Int
    /// Client connections open now, by `application_name` (empty names as `(none)`), largest first.
    public var connectionsByApplication: [(name: String, count: Int)]
    /// The verified settings.
    public var findings: [Finding]

    public static func == (lhs: CheckReport, rhs: CheckReport) -> Bool {
        lhs.serverVersion == rhs.serverVersion && lhs.maxConnections == rhs.maxConnections
            && lhs.reservedConnections == rhs.reservedConnections && lhs.findings == rhs.findings
            && lhs.connectionsByApplication.map(\.name) == rhs.connectionsByApplication.map(\.name)
            && lhs.connectionsByApplication.map(\.count) == rhs.connectionsByApplication.map(\.count)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(serverVersion)
        hasher.combine(maxConnections)
        hasher.combine(findings)
    }

    /// Connections still free for pools: `max_connections − superuser_reserved_connections − open now`.
    public var freeConnections: Int {
        maxConnections - reservedConnections - connectionsByApplication.reduce(0) { $0 + $1.count }
    }

    /// The report as the lines `reservoir check` prints.
    public var lines: [String] {
        var lines = [
            "server version:       \(serverVersion)",
            "max_connections:      \(maxConnections) (\(reservedConnections) reserved for superusers, "
                + "\(freeConnections) free now)",
            "connections by application_name:",
        ]
        for entry in connectionsByApplication {
            lines.append("  \(entry.count)\t\(entry.name)")
        }
        for finding in findings {
            lines.append("\(finding.level == .ok ? "ok  " : "warn") \(finding.message)")
        }
        return lines
    }
}

/// Connects to a database and verifies the settings a connection pool relies on.
public enum DatabaseCheck {
    /// Runs the check on one fresh connection, closed before returning.
    ///
    /// - Parameters:
    ///   - configuration: where to connect.
    ///   - logger: the connection's logger.
    /// - Returns: the report.
    /// - Throws: `PostgresError` when the connection or a query fails; its description never holds the password.
    public static func run(
        configuration: PostgresConnection.Configuration,
        logger: Logger
    ) async throws -> CheckReport {
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        do {
            let report = try await check(connection)
            await connection.close()
            return report
        } catch {
            await connection.close()
            throw error
        }
    }

    static func check(_ connection: PostgresConnection) async throws -> CheckReport {
        let settings = try await connection.query(
            """
            SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'max_connections', \
            'superuser_reserved_connections', 'idle_in_transaction_session_timeout', 'statement_timeout', \
            'tcp_keepalives_idle', 'idle_session_timeout')
            """
        )
        var values: [String: String] = [:]
        for row in settings {
            let (name, setting) = try row.decode((String, String).self)
            values[name] = setting
        }
        let byApplication = try await connection.query(
            """
            SELECT coalesce(nullif(application_name, ''), '(none)') AS name, count(*)::int8 AS connections \
            FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1
            """
        )
        var connections: [(name: String, count: Int)] = []
        for row in byApplication {
            let (name, count) = try row.decode((String, Int64).self)
            connections.append((name, Int(count)))
        }
        let ssl = try await connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .first.map { try $0.decode(Bool.self, column: "ssl") } ?? false

        let maxConnections = Int(values["max_connections"] ?? "") ?? 0
        let reserved = Int(values["superuser_reserved_connections"] ?? "") ?? 0
        var findings: [CheckReport.Finding] = []
        let free = maxConnections - reserved - connections.reduce(0) { $0 + $1.count }
        if free < max(4, maxConnections / 10) {
            findings.append(
                .init(
                    level: .warning,
                    message:
                        "only \(free) of \(maxConnections) connections \(free == 1 ? "is" : "are") free: new pools "
                        + "or a restart of every instance at once may be refused (SQLSTATE 53300); size pools with "
                        + "`reservoir advise`"
                )
            )
        } else {
            findings.append(.init(level: .ok, message: "\(free) connection\(free == 1 ? "" : "s") free for pools"))
        }
        let idleInTransaction = Int(values["idle_in_transaction_session_timeout"] ?? "0") ?? 0
        if idleInTransaction == 0 {
            findings.append(
                .init(
                    level: .warning,
                    message: "idle_in_transaction_session_timeout is off: a leaked transaction holds its locks and "
                        + "its connection until someone kills it; consider a few minutes"
                )
            )
        } else {
            findings.append(
                .init(level: .ok, message: "idle_in_transaction_session_timeout = \(idleInTransaction) ms")
            )
        }
        let idleSession = Int(values["idle_session_timeout"] ?? "0") ?? 0
        if idleSession > 0 {
            findings.append(
                .init(
                    level: .warning,
                    message: "idle_session_timeout = \(idleSession) ms closes idle pooled connections: keep the "
                        + "pool's idleTimeout and keep-alive interval below it"
                )
            )
        }
        let statementTimeout = Int(values["statement_timeout"] ?? "0") ?? 0
        findings.append(
            .init(
                level: .ok,
                message: statementTimeout == 0
                    ? "statement_timeout is off on the server: set it per pool or per query"
                    : "statement_timeout = \(statementTimeout) ms"
            )
        )
        findings.append(
            .init(level: .ok, message: ssl ? "this connection uses TLS" : "this connection does not use TLS")
        )
        return CheckReport(
            serverVersion: values["server_version"] ?? "unknown",
            maxConnections: maxConnections,
            reservedConnections: reserved,
            connectionsByApplication: connections,
            findings: findings
        )
    }
}
