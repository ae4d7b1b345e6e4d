/// Metadata keys of the module's log lines, in one place (dot notation, as the rest of Reservoir).
enum LogKey {
    static let channel = "backpressure.channel"
    static let limiter = "backpressure.limiter"
    static let limit = "backpressure.limit"
    static let previousLimit = "backpressure.previous_limit"
    static let latencyEstimate = "backpressure.latency_estimate_ns"
    static let dropped = "backpressure.dropped"
    static let waiters = "backpressure.waiters"
    static let policy = "backpressure.policy"
}
