import CoreMetrics
import DequeModule
import Logging

/// A resource leased from a ``ResourcePool``, for code that cannot use `withResource`.
///
/// The lease is noncopyable: it has one owner, ``release()`` and ``release(discarding:)`` consume it, so a double
/// release or a use after release does not compile. A lease dropped without release (its `deinit` runs) is an exact
/// leak: it is counted in `reservoir.pool.leaks{kind=dropped}`, logged with the acquire site, and its resource is
/// closed and replaced, never handed to anyone else.
///
/// Holding a lease keeps its pool alive.
@frozen
public struct ResourceLease<Resource: Sendable, PoolClock: Clock>: ~Copyable, Sendable
where PoolClock.Duration == Duration {
    // Only trivially destroyed properties, so that `release()` can end with `discard self` and `deinit` runs only for
    // leaks. The two references are retained by hand: at creation, and released after the return (or the leak
    // report).
    @usableFromInline let retainedPool: Unmanaged<ResourcePool<Resource, PoolClock>>
    @usableFromInline let retainedEntry: Unmanaged<PooledResource<Resource>>
    @usableFromInline let site: AcquireSite

    @inlinable
    init(pool: ResourcePool<Resource, PoolClock>, entry: PooledResource<Resource>, site: AcquireSite) {
        self.retainedPool = .passRetained(pool)
        self.retainedEntry = .passRetained(entry)
        self.site = site
    }

    /// The leased resource. Do not keep it beyond the lease.
    @inlinable
    public var resource: Resource {
        self.retainedEntry.takeUnretainedValue().resource
    }

    /// Where the lease was acquired.
    public var acquireSite: AcquireSite {
        self.site
    }

    /// Returns the resource to the pool.
    ///
    /// The after-release hook, if any, runs first in this task and may still discard the resource.
    @inlinable
    public consuming func release() async {
        await self.endLease(markedBroken: false, error: nil)
    }

    /// Returns the resource to the pool, or marks it broken so that it is closed and replaced.
    ///
    /// - Parameter discarding: `true` when the resource must not be reused (for example after a protocol error).
    @inlinable
    public consuming func release(discarding: Bool) async {
        await self.endLease(markedBroken: discarding, error: nil)
    }

    @inlinable @inline(__always)
    consuming func endLease(markedBroken: Bool, error: (any Error)?) async {
        let pool = self.retainedPool
        let entry = self.retainedEntry
        let site = self.site
        discard self
        await pool.takeUnretainedValue().returnLease(
            entry.takeUnretainedValue(),
            site: site,
            markedBroken: markedBroken,
            error: error
        )
        entry.release()
        pool.release()
    }

    deinit {
        // A leak: the lease ends without release(). A deinit cannot await (the after-release path and the closing of
        // the resource are async), so the report travels in a task of its own; this path is rare and counted.
        let pool = self.retainedPool
        let entry = self.retainedEntry
        let site = self.site
        Task {
            await pool.takeRetainedValue().reportDroppedLease(entry.takeRetainedValue(), site: site)
        }
    }
}
