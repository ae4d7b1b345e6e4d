// The ThreadSanitizer build's lock (`-D RESERVOIR_TSAN`, see .ci/run). One copy of this file lives in every target
// that uses `Mutex`; they are identical (.ci/run checks it), so change them together.
#if RESERVOIR_TSAN
import Glibc

/// A pthread mutex standing in for `Synchronization.Mutex` in the ThreadSanitizer build only.
///
/// `Synchronization.Mutex` locks with futex system calls that ThreadSanitizer does not see on this toolchain, so it
/// reports races on every value such a Mutex protects (177 false reports in the unit tests). This module-local type
/// shadows the imported one, with the same `init` and `withLock`, so that the sanitizer build locks with
/// `pthread_mutex_lock`, which ThreadSanitizer understands, and reports only real races. Release and debug builds
/// never compile it.
@usableFromInline
final class Mutex<Value: ~Copyable>: @unchecked Sendable {
    // Unchecked: `value` is only reached through `withLock`, under `mutex`.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    @inlinable
    init(_ initialValue: consuming sending Value) {
        self.mutex = .allocate(capacity: 1)
        pthread_mutex_init(self.mutex, nil)
        self.value = initialValue
    }

    deinit {
        pthread_mutex_destroy(self.mutex)
        self.mutex.deallocate()
    }

    @inlinable
    func withLock<Result: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        return try body(&self.value)
    }
}
#endif
