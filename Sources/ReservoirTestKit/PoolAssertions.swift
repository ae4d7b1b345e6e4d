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

/// Thrown by `ResourcePool.waitForStatistics(timeout:until:)` (and `waitForStatistics(maximumYields:until:)`) when the
/// condition never held.
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

    /// Waits until the pool's statistics satisfy `condition`, checking again after each change of the pool's state.
    ///
    /// Use it to rendezvous with work the pool does in other tasks, such as a waiter having queued, a resource having
    /// come back or a creation having failed. It neither polls nor yields: the pool wakes it when its state changes.
    /// A condition that changes with time alone (not with the pool's state) is checked only at the next change.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait, in real time, before giving up: a bound for a test that would otherwise hang,
    ///     not a means of synchronisation (a passing test never waits for it).
    ///   - condition: the state to wait for.
    /// - Returns: the statistics that satisfied the condition.
    /// - Throws: ``ConditionNotReachedError`` when the condition did not hold within `timeout`; `CancellationError`
    ///   when the task is cancelled.
    @discardableResult
    public nonisolated func waitForStatistics(
        timeout: Duration = .seconds(30),
        until condition: @escaping @Sendable (ResourcePoolStatistics) -> Bool
    ) async throws -> ResourcePoolStatistics {
        try await withThrowingTaskGroup(of: ResourcePoolStatistics.self) { group in
            group.addTask {
                try await self.statistics(satisfying: condition)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw ConditionNotReachedError(lastStatistics: self.statistics)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Lets other tasks run, by yielding, until the pool's statistics satisfy `condition`.
    ///
    /// For tests whose pool is moved by work outside the process's tasks (a real server), where a bound in yields is
    /// wanted; otherwise prefer ``waitForStatistics(timeout:until:)``, which waits for the pool's changes of state.
    ///
    /// - Parameters:
    ///   - maximumYields: how many times to yield before giving up.
    ///   - condition: the state to wait for.
    /// - Returns: the statistics that satisfied the condition.
    /// - Throws: ``ConditionNotReachedError`` when the condition never held.
    @discardableResult
    public nonisolated func waitForStatistics(
        maximumYields: Int,
        until condition: @Sendable (ResourcePoolStatistics) -> Bool
    ) async throws -> ResourcePoolStatistics {
        var last = self.statistics
        for _ in 0..<maximumYields {
            if condition(last) { return last }
            await Task.yield()
            last = self.statistics
        }
        throw ConditionNotReachedError(lastStatistics: last)
    }
}
