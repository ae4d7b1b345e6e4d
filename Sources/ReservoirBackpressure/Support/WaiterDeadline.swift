import Synchronization

/// Whether the timer of one timed wait (a `send(_:timeout:clock:)`, an `acquire(timeout:deadline:)`) has fired.
///
/// A timed wait runs its timer in a child task that starts before the caller registers as a waiter. When the
/// timer fires first, there is no waiter to fail yet; without a record of it, the caller would then register and
/// wait with no deadline at all (measured before this type: 59 to 149 of 20,000 timed sends with a zero timeout on
/// a full channel never returned). So the deadline belongs to the waiter's state:
///
/// 1. The timer fires and takes the primitive's lock: if the waiter is registered, it is failed with `timedOut`;
///    if not, ``markPassed()`` records that its deadline has passed.
/// 2. The caller registers under the same lock and reads ``hasPassed`` there: a deadline that passed before
///    registration is seen at registration, and the caller fails with `timedOut` instead of waiting.
///
/// Both sides run under the primitive's lock, so the lock orders them; the atomic only makes the class `Sendable`.
@usableFromInline
final class WaiterDeadline: Sendable {
    @usableFromInline let passed = Atomic<Bool>(false)

    @inlinable
    init() {}

    /// Records that the deadline passed before the waiter registered. Call it under the primitive's lock.
    @inlinable
    func markPassed() { passed.store(true, ordering: .relaxed) }

    /// Whether the deadline passed before the waiter registered. Read it under the primitive's lock.
    @inlinable
    var hasPassed: Bool { passed.load(ordering: .relaxed) }
}
