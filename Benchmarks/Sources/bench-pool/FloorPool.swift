import Synchronization

/// The floor: the plainest correct actor pool — a stack of idle resources and a FIFO queue of waiters, with no
/// timeouts, cancellation, health, metrics or leak tracking. Whatever a full-featured actor pool costs above this is
/// the price of its features.
actor FloorPool: BenchPool {
    private var idle: [BenchResource]
    private var waiters: [CheckedContinuation<BenchResource, Never>] = []
    private var firstWaiter = 0

    init(resources: [BenchResource]) {
        self.idle = resources
    }

    func acquire() async -> BenchResource {
        if let resource = self.idle.popLast() {
            return resource
        }
        return await withCheckedContinuation { self.waiters.append($0) }
    }

    func release(_ resource: BenchResource) {
        guard self.firstWaiter < self.waiters.count else {
            self.idle.append(resource)
            return
        }
        let waiter = self.waiters[self.firstWaiter]
        self.firstWaiter += 1
        if self.firstWaiter >= 64 && self.firstWaiter * 2 >= self.waiters.count {
            self.waiters.removeFirst(self.firstWaiter)
            self.firstWaiter = 0
        }
        waiter.resume(returning: resource)
    }

    nonisolated func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        let resource = await self.acquire()
        do {
            let result = try await body(resource)
            await self.release(resource)
            return result
        } catch {
            await self.release(resource)
            throw error
        }
    }

    func shutdown() async {}
}

/// The lock-based floor: the same plain pool as ``FloorPool`` with a `Mutex` instead of an actor (the shape of
/// postgres-nio's pool, which keeps its state machine behind a lock). It waits with `UnsafeContinuation` and takes a
/// free resource without suspending. It tells what the actor hops themselves cost, and what an actor costs in
/// allocations under contention (the runtime allocates a job each time a contended actor changes hands).
final class LockFloorPool: BenchPool {
    private struct State {
        var idle: [BenchResource]
        var waiters: [UnsafeContinuation<BenchResource, Never>] = []
        var firstWaiter = 0
    }

    private let state: Mutex<State>

    init(resources: [BenchResource]) {
        self.state = Mutex(State(idle: resources))
    }

    func acquire() async -> BenchResource {
        if let resource = self.state.withLock({ $0.idle.popLast() }) {
            return resource
        }
        return await withUnsafeContinuation { continuation in
            let resource = self.state.withLock { state -> BenchResource? in
                if let resource = state.idle.popLast() { return resource }
                state.waiters.append(continuation)
                return nil
            }
            if let resource {
                continuation.resume(returning: resource)
            }
        }
    }

    func release(_ resource: BenchResource) {
        let waiter = self.state.withLock { state -> UnsafeContinuation<BenchResource, Never>? in
            guard state.firstWaiter < state.waiters.count else {
                state.idle.append(resource)
                return nil
            }
            let waiter = state.waiters[state.firstWaiter]
            state.firstWaiter += 1
            if state.firstWaiter >= 64 && state.firstWaiter * 2 >= state.waiters.count {
                state.waiters.removeFirst(state.firstWaiter)
                state.firstWaiter = 0
            }
            return waiter
        }
        waiter?.resume(returning: resource)
    }

    func cycle<T: Sendable>(_ body: (BenchResource) async throws -> T) async throws -> T {
        let resource = await self.acquire()
        do {
            let result = try await body(resource)
            self.release(resource)
            return result
        } catch {
            self.release(resource)
            throw error
        }
    }

    func shutdown() async {}
}
