import _ConnectionPoolModule
import Synchronization

/// The in-memory resource every pool under test hands out: an identity and a close hook, nothing else, so the
/// benchmark measures only what the pools themselves cost.
///
/// It conforms to postgres-nio's `PooledConnection` so that the very same type goes into every pool.
final class BenchResource: PooledConnection {
    let id: Int
    private let closeHandlers = Mutex<[@Sendable ((any Error)?) -> Void]>([])
    private let closed = Atomic<Bool>(false)

    init(id: Int) {
        self.id = id
    }

    func onClose(_ closure: @escaping @Sendable ((any Error)?) -> Void) {
        self.closeHandlers.withLock { $0.append(closure) }
    }

    func close() {
        guard self.closed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            return
        }
        let handlers = self.closeHandlers.withLock { handlers in
            defer { handlers.removeAll() }
            return handlers
        }
        for handler in handlers {
            handler(nil)
        }
    }

    var isClosed: Bool {
        self.closed.load(ordering: .relaxed)
    }
}
