/// How the service guards its database routes.
///
/// A struct with static constants, like the library's policies, so that a new mode never breaks a `switch`.
public struct AdmissionMode: Hashable, Sendable, CustomStringConvertible {
    enum Base: String, Hashable, Sendable, CaseIterable {
        case fixed
        case adaptive
        case selfSizing = "self-sizing"
        case unbounded
    }

    let base: Base

    /// A `ConcurrencyLimiter` with a fixed limit and a short, bounded queue: what does not fit gets 503 at once.
    public static let fixed = AdmissionMode(base: .fixed)
    /// An `AdaptiveConcurrencyLimiter` (latency gradient) that moves its limit between 1 and four times the pool.
    public static let adaptive = AdmissionMode(base: .adaptive)
    /// No limiter in front: the pool sizes itself (`ResourcePoolConfiguration.selfSizing`) and sheds through its
    /// bounded waiter queue (`maximumWaiters`) and its acquire timeout.
    public static let selfSizing = AdmissionMode(base: .selfSizing)
    /// No shedding at all: every request waits for a connection, up to the pool's acquire timeout.
    public static let unbounded = AdmissionMode(base: .unbounded)

    /// The mode an environment value names (`fixed`, `adaptive`, `self-sizing`, `unbounded`), or `nil`.
    ///
    /// - Parameter name: the value, case-insensitive.
    public init?(name: String) {
        guard let base = Base(rawValue: name.lowercased()) else { return nil }
        self.base = base
    }

    init(base: Base) {
        self.base = base
    }

    public var description: String { base.rawValue }
}

/// Everything the orders service can be told, with the defaults `swift run orders-service` uses.
///
/// Build it from the environment with ``init(environment:)``, or set the fields in code (the tests do). The
/// configuration is validated by ``validate()``, which ``OrdersService`` calls before it starts anything.
public struct OrdersConfiguration: Sendable, CustomStringConvertible {
    /// A libpq connection string (`postgresql://…` or `key=value` pairs); `nil` asks the executable for a
    /// throwaway server. Never logged: ``description`` leaves it out.
    public var databaseURL: String?
    /// The address the HTTP server binds. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// The HTTP port; 0 picks a free one. Default 8080.
    public var port: Int = 8080
    /// The pool's maximum size. Default 8.
    public var poolSize: Int = 8
    /// How database routes are guarded. Default ``AdmissionMode/fixed``.
    public var admission: AdmissionMode = .fixed
    /// The fixed limiter's limit (the adaptive one's starting limit); `nil` uses ``poolSize``.
    public var concurrencyLimit: Int?
    /// Requests that may wait for the limiter (or, in self-sizing mode, for the pool) before the service sheds;
    /// `nil` uses the limit.
    public var queueLength: Int?
    /// The longest a request waits in that queue before it is shed. Default 500 ms.
    public var queueTimeout: Duration = .milliseconds(500)
    /// The pool's acquire timeout (what an unbounded request waits at most). Default 30 s.
    public var acquireTimeout: Duration = .seconds(30)
    /// Requests per second each client may make to the database routes; `nil` (the default) turns the per-client
    /// rate limiter off.
    public var clientRate: Double?
    /// The per-client burst; `nil` uses twice the rate (at least 1).
    public var clientBurst: Int?
    /// Extra time each order creation holds its connection (`pg_sleep` in the transaction), to model a heavier
    /// database in load tests. Default zero.
    public var simulatedQueryTime: Duration = .zero
    /// Capacity of the background job queue. Default 1024.
    public var jobQueueCapacity: Int = 1024
    /// How long `/ready` reports draining before the HTTP server stops accepting, so that a load balancer can take
    /// the instance out first. Default zero.
    public var drainDelay: Duration = .zero
    /// Whether each request's database work runs on the PostgreSQL I/O threads (`pool.withPinnedExecution`): the
    /// thread that reads an answer continues the request, with no thread woken in between. Default `false`.
    public var pinsDatabaseWork: Bool = false
    /// Whether `GET /debug/hold/:key` exists (it waits for a PostgreSQL advisory lock; tests use it to hold
    /// connections deterministically). Default `false`.
    public var enablesTestRoutes: Bool = false

    /// The documented defaults.
    public init() {}

    /// Reads the configuration from environment variables; unset variables keep their defaults.
    ///
    /// | variable | field |
    /// |---|---|
    /// | `RESERVOIR_DATABASE_URL`, else `DATABASE_URL` | ``databaseURL`` |
    /// | `ORDERS_HOST`, `ORDERS_PORT` | ``host``, ``port`` |
    /// | `ORDERS_POOL_SIZE` | ``poolSize`` |
    /// | `ORDERS_ADMISSION` (`fixed`, `adaptive`, `self-sizing`, `unbounded`) | ``admission`` |
    /// | `ORDERS_CONCURRENCY_LIMIT`, `ORDERS_QUEUE_LENGTH`, `ORDERS_QUEUE_TIMEOUT_MS` | limiter |
    /// | `ORDERS_ACQUIRE_TIMEOUT_MS` | ``acquireTimeout`` |
    /// | `ORDERS_CLIENT_RATE`, `ORDERS_CLIENT_BURST` | ``clientRate``, ``clientBurst`` |
    /// | `ORDERS_PIN_DATABASE_WORK` (0 or 1) | ``pinsDatabaseWork`` |
    /// | `ORDERS_SIMULATED_QUERY_MS`, `ORDERS_JOB_QUEUE`, `ORDERS_DRAIN_DELAY_MS`, `ORDERS_TEST_ROUTES` | the rest |
    ///
    /// - Parameter environment: the variables, usually `ProcessInfo.processInfo.environment`.
    /// - Throws: ``OrdersConfigurationError`` naming the variable whose value does not parse or is out of range.
    public init(environment: [String: String]) throws(OrdersConfigurationError) {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingWhitespace, !raw.isEmpty else { return nil }
            return raw
        }
        func integer(_ name: String, in range: ClosedRange<Int>) throws(OrdersConfigurationError) -> Int? {
            guard let raw = value(name) else { return nil }
            guard let parsed = Int(raw), range.contains(parsed) else {
                throw OrdersConfigurationError(
                    variable: name,
                    message: "expected a whole number in \(range.lowerBound)...\(range.upperBound), got \"\(raw)\""
                )
            }
            return parsed
        }
        func milliseconds(_ name: String, in range: ClosedRange<Int>) throws(OrdersConfigurationError) -> Duration? {
            try integer(name, in: range).map { .milliseconds($0) }
        }

        self.init()
        databaseURL = value("RESERVOIR_DATABASE_URL") ?? value("DATABASE_URL")
        if let host = value("ORDERS_HOST") { self.host = host }
        if let port = try integer("ORDERS_PORT", in: 0...65535) { self.port = port }
        if let size = try integer("ORDERS_POOL_SIZE", in: 1...1000) { self.poolSize = size }
        if let raw = value("ORDERS_ADMISSION") {
            guard let mode = AdmissionMode(name: raw) else {
                let names = AdmissionMode.Base.allCases.map(\.rawValue).joined(separator: ", ")
                throw OrdersConfigurationError(
                    variable: "ORDERS_ADMISSION",
                    message: "expected one of \(names), got \"\(raw)\""
                )
            }
            self.admission = mode
        }
        concurrencyLimit = try integer("ORDERS_CONCURRENCY_LIMIT", in: 1...100_000)
        queueLength = try integer("ORDERS_QUEUE_LENGTH", in: 0...1_000_000)
        if let timeout = try milliseconds("ORDERS_QUEUE_TIMEOUT_MS", in: 1...3_600_000) { queueTimeout = timeout }
        if let timeout = try milliseconds("ORDERS_ACQUIRE_TIMEOUT_MS", in: 1...3_600_000) { acquireTimeout = timeout }
        if let raw = value("ORDERS_CLIENT_RATE") {
            guard let rate = Double(raw), rate.isFinite, rate >= 0 else {
                throw OrdersConfigurationError(
                    variable: "ORDERS_CLIENT_RATE",
                    message: "expected requests per second (0 turns the limit off), got \"\(raw)\""
                )
            }
            clientRate = rate > 0 ? rate : nil
        }
        clientBurst = try integer("ORDERS_CLIENT_BURST", in: 1...1_000_000)
        if let time = try milliseconds("ORDERS_SIMULATED_QUERY_MS", in: 0...60_000) { simulatedQueryTime = time }
        if let capacity = try integer("ORDERS_JOB_QUEUE", in: 1...1_000_000) { jobQueueCapacity = capacity }
        if let delay = try milliseconds("ORDERS_DRAIN_DELAY_MS", in: 0...600_000) { drainDelay = delay }
        func flag(_ name: String) throws(OrdersConfigurationError) -> Bool? {
            guard let raw = value(name) else { return nil }
            switch raw.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw OrdersConfigurationError(variable: name, message: "expected 0 or 1, got \"\(raw)\"")
            }
        }
        if let pins = try flag("ORDERS_PIN_DATABASE_WORK") { pinsDatabaseWork = pins }
        if let routes = try flag("ORDERS_TEST_ROUTES") { enablesTestRoutes = routes }
        try validate()
    }

    /// The limit in front of the database routes, resolved: ``concurrencyLimit`` or ``poolSize``.
    public var effectiveConcurrencyLimit: Int { concurrencyLimit ?? poolSize }

    /// The queue behind the limit, resolved: ``queueLength`` or the limit.
    public var effectiveQueueLength: Int { queueLength ?? effectiveConcurrencyLimit }

    /// The per-client burst, resolved, or `nil` without a client rate.
    public var effectiveClientBurst: Int? {
        guard let clientRate else { return nil }
        return clientBurst ?? max(1, Int((clientRate * 2).rounded(.up)))
    }

    /// Checks the fields that code (not only the environment) can set.
    ///
    /// - Throws: ``OrdersConfigurationError`` naming the field.
    public func validate() throws(OrdersConfigurationError) {
        guard (0...65535).contains(port) else {
            throw OrdersConfigurationError(variable: "port", message: "must be in 0...65535 (got \(port))")
        }
        guard poolSize >= 1 else {
            throw OrdersConfigurationError(variable: "poolSize", message: "must be at least 1 (got \(poolSize))")
        }
        if let concurrencyLimit, concurrencyLimit < 1 {
            throw OrdersConfigurationError(
                variable: "concurrencyLimit",
                message: "must be at least 1 (got \(concurrencyLimit))"
            )
        }
        if let queueLength, queueLength < 0 {
            throw OrdersConfigurationError(variable: "queueLength", message: "must not be negative (got \(queueLength))")
        }
        if let clientRate, !(clientRate.isFinite && clientRate > 0) {
            throw OrdersConfigurationError(variable: "clientRate", message: "must be positive (got \(clientRate))")
        }
        guard queueTimeout > .zero else {
            throw OrdersConfigurationError(variable: "queueTimeout", message: "must be positive (got \(queueTimeout))")
        }
        guard acquireTimeout > .zero else {
            throw OrdersConfigurationError(
                variable: "acquireTimeout",
                message: "must be positive (got \(acquireTimeout))"
            )
        }
        guard simulatedQueryTime >= .zero else {
            throw OrdersConfigurationError(variable: "simulatedQueryTime", message: "must not be negative")
        }
        guard drainDelay >= .zero else {
            throw OrdersConfigurationError(variable: "drainDelay", message: "must not be negative")
        }
        guard jobQueueCapacity >= 1 else {
            throw OrdersConfigurationError(variable: "jobQueueCapacity", message: "must be at least 1")
        }
    }

    /// Every field except the database URL (which can hold a password).
    public var description: String {
        "OrdersConfiguration(database: \(databaseURL == nil ? "throwaway" : "from the environment"), "
            + "listen: \(host):\(port), poolSize: \(poolSize), admission: \(admission), "
            + "limit: \(effectiveConcurrencyLimit), queue: \(effectiveQueueLength), queueTimeout: \(queueTimeout), "
            + "acquireTimeout: \(acquireTimeout), clientRate: \(clientRate.map { "\($0)/s" } ?? "off"), "
            + "clientBurst: \(effectiveClientBurst.map(String.init) ?? "-"), "
            + "simulatedQueryTime: \(simulatedQueryTime), jobQueue: \(jobQueueCapacity), "
            + "drainDelay: \(drainDelay), pinsDatabaseWork: \(pinsDatabaseWork), testRoutes: \(enablesTestRoutes))"
    }
}

/// A configuration value that does not parse or is out of range.
public struct OrdersConfigurationError: Error, Hashable, CustomStringConvertible {
    /// The environment variable (or, for configurations built in code, the field) that is wrong.
    public var variable: String
    /// What is wrong and what is expected.
    public var message: String

    public var description: String { "\(variable): \(message)" }
}

extension String {
    var trimmingWhitespace: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
