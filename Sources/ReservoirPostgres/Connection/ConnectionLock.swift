import Glibc

/// A plain pthread mutex on the heap.
///
/// Critical sections under it are short and never block on I/O or await: libpq calls made under it are the
/// non-blocking ones (send, flush, consume, parse). It is never held across a suspension point.
final class ConnectionLock: @unchecked Sendable {
    // The mutex is only touched through pthread functions, which are thread-safe by definition.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always) func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
