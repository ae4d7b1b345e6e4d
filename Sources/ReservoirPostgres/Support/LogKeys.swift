/// Metadata keys of the module's log lines, in one place (dot notation, as the rest of Reservoir).
enum LogKey {
    static let poolName = "pool.name"
    static let leaseSite = "lease.site"
    static let error = "postgres.error"
    static let backendPID = "postgres.backend_pid"
    static let severity = "postgres.severity"
    static let sqlState = "postgres.sqlstate"
    static let detail = "postgres.detail"
    static let hint = "postgres.hint"
    static let transactionStatus = "postgres.transaction_status"
    static let gracePeriod = "postgres.grace_period"
}
