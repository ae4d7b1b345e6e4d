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
