import Reservoir

/// Thrown by `ResourcePool.expectNoOutstandingLeases()` when leases are still out.
public struct OutstandingLeasesError: Error, Sendable, CustomStringConvertible {
    /// Where each outstanding lease was acquired.
    public var sites: [AcquireSite]

    public var description: String {
        "\(self.sites.count) lease(s) still outstanding, acquired at: "
            + self.sites.map(\.description).joined(separator: "; ")
    }
}

/// Thrown by `ResourcePool.waitForStatistics(maximumYields:until:)` when the condition never held.
public struct ConditionNotReachedError: Error, Sendable, CustomStringConvertible {
    /// The last snapshot seen.
    public var lastStatistics: ResourcePoolStatistics

    public var description: String {
        "the pool never reached the expected state; last seen: leased \(self.lastStatistics.leased), idle "
            + "\(self.lastStatistics.idle), creating \(self.lastStatistics.creating), waiting "
            + "\(self.lastStatistics.waiting), closing \(self.lastStatistics.closing)"
    }
}

extension ResourcePool {
    /// Checks that no lease is outstanding, for the end of a test (or an integration test's teardown).
    ///
    /// - Throws: ``OutstandingLeasesError`` naming the acquire site of every lease still out.
    public func expectNoOutstandingLeases() async throws {
        let sites = self.outstandingLeaseSites()
        if !sites.isEmpty { throw OutstandingLeasesError(sites: sites) }
    }

    /// Lets other tasks run (by yielding, never by sleeping) until the pool's statistics satisfy `condition`.
    ///
    /// Use it to rendezvous with work the pool does in other tasks, such as a waiter having queued.
    ///
    /// - Parameters:
    ///   - maximumYields: how many times to yield before giving up.
    ///   - condition: the state to wait for.
    /// - Returns: the statistics that satisfied the condition.
    /// - Throws: ``ConditionNotReachedError`` when the condition never held.
    @discardableResult
    public nonisolated func waitForStatistics(
        maximumYields: Int = 100_000,
        until condition: @Sendable (ResourcePoolStatistics) -> Bool
    ) async throws -> ResourcePoolStatistics {
        var last = self.stats()
        for _ in 0..<maximumYields {
            if condition(last) { return last }
            await Task.yield()
            last = self.stats()
        }
        throw ConditionNotReachedError(lastStatistics: last)
    }
}
