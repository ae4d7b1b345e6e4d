/// What the live view shows at one instant: the pool's state and the workload's figures since the start.
public struct DashboardSnapshot: Sendable, Hashable {
    /// A place in the code that acquired a lease, with how often something happened there.
    public struct SiteCount: Sendable, Hashable {
        /// `file:line function`.
        public var site: String
        /// How many times.
        public var count: Int

        /// Creates a site count.
        ///
        /// - Parameters:
        ///   - site: where the lease was acquired.
        ///   - count: how many times.
        public init(site: String, count: Int) {
            self.site = site
            self.count = count
        }
    }

    /// Time since the workload started.
    public var elapsed: Duration = .zero
    /// The planned length of the run.
    public var duration: Duration = .zero
    /// The pool's name.
    public var poolName: String = ""
    /// Connections idle in the pool.
    public var idle = 0
    /// Connections leased to callers.
    public var leased = 0
    /// Connections being opened.
    public var creating = 0
    /// The pool's maximum size.
    public var maximumSize = 0
    /// How many connections may be leased at once: `maximumSize` unless the pool sizes itself.
    public var effectiveMaximumSize = 0
    /// Callers waiting for a connection.
    public var waiters = 0
    /// Acquire wait, median, in seconds.
    public var acquireWaitP50 = 0.0
    /// Acquire wait, 99th percentile, in seconds.
    public var acquireWaitP99 = 0.0
    /// Hold time (acquire to release), median, in seconds.
    public var holdTimeP50 = 0.0
    /// Hold time, 99th percentile, in seconds.
    public var holdTimeP99 = 0.0
    /// Operations completed per second over the last interval.
    public var throughput = 0.0
    /// Operations completed since the start.
    public var completed = 0
    /// Operations that failed since the start.
    public var failed = 0
    /// Leases dropped without release, by acquire site.
    public var leaks: [SiteCount] = []
    /// Leases held past the leak threshold, by acquire site.
    public var longHolds: [SiteCount] = []
    /// Connections returned inside a transaction, by acquire site.
    public var dirtyReturns: [SiteCount] = []
    /// The pool's own sizing verdict, one line.
    public var sizing: String = ""

    /// Creates an empty snapshot.
    public init() {}
}
