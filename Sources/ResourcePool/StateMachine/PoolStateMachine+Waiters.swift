import DequeModule
import HeapModule

extension PoolStateMachine {
    /// FIFO queue of waiters with O(1) removal.
    ///
    /// Waiter ids grow strictly in queue order, and entries leave the deque only from the front, so a waiter is still
    /// queued exactly when its id is at least the front's id and it is not in `removed` (removed from the middle and
    /// not yet skipped). The front entry is always live: removals purge the front at once.
    ///
    /// Deadlines live in a min-heap; entries for waiters that already left are skipped when they surface.
    @usableFromInline
    struct WaiterQueue: Sendable {
        @usableFromInline
        struct Entry: Sendable, Equatable {
            @usableFromInline var id: WaiterID
            @usableFromInline var enqueuedAt: Instant
        }

        @usableFromInline
        struct Deadline: Sendable, Comparable {
            @usableFromInline var at: Instant
            @usableFromInline var id: WaiterID

            @usableFromInline
            static func < (lhs: Deadline, rhs: Deadline) -> Bool {
                (lhs.at, lhs.id) < (rhs.at, rhs.id)
            }
        }

        @usableFromInline var entries: Deque<Entry> = Deque(minimumCapacity: 16)
        @usableFromInline var removed: Set<WaiterID> = []
        @usableFromInline var deadlines: Heap<Deadline> = Heap()
        @usableFromInline var nextID: WaiterID = 1
        /// Waiters still queued (entries minus removed ones).
        @usableFromInline private(set) var count = 0

        @usableFromInline init() {}

        @inlinable var isEmpty: Bool { self.count == 0 }

        /// Deadlines still tracked (for tests: stale ones are pruned as they reach the front).
        var pendingDeadlineCount: Int { self.deadlines.count }

        /// The longest-waiting live entry.
        var first: Entry? { self.entries.first }

        mutating func enqueue(now: Instant, deadline: Instant?) -> WaiterID {
            let id = self.nextID
            self.nextID += 1
            self.entries.append(Entry(id: id, enqueuedAt: now))
            self.count += 1
            if let deadline {
                self.deadlines.insert(Deadline(at: deadline, id: id))
            }
            return id
        }

        func contains(_ id: WaiterID) -> Bool {
            guard let first = self.entries.first, let last = self.entries.last else { return false }
            return id >= first.id && id <= last.id && !self.removed.contains(id)
        }

        /// Takes the longest-waiting waiter.
        mutating func dequeue() -> Entry? {
            guard let entry = self.entries.popFirst() else { return nil }
            self.count -= 1
            self.purgeFront()
            return entry
        }

        /// Removes a waiter wherever it is. Returns `false` when it is not queued.
        mutating func remove(_ id: WaiterID) -> Bool {
            guard self.contains(id) else { return false }
            self.count -= 1
            if self.entries.first?.id == id {
                self.entries.removeFirst()
                self.purgeFront()
            } else {
                self.removed.insert(id)
            }
            return true
        }

        private mutating func purgeFront() {
            while let first = self.entries.first, !self.removed.isEmpty, self.removed.remove(first.id) != nil {
                self.entries.removeFirst()
            }
            if self.entries.isEmpty {
                self.removed.removeAll(keepingCapacity: true)
            }
            // Drop deadlines of waiters that already left. With one acquire timeout for every call the deadlines
            // come in queue order, so this keeps the heap as small as the queue.
            while let next = self.deadlines.min, !self.contains(next.id) {
                self.deadlines.removeMin()
            }
        }

        /// Removes and returns the waiters whose deadline is at or before `now`, oldest deadline first.
        mutating func removeExpired(now: Instant) -> [WaiterID] {
            var expired: [WaiterID] = []
            while let next = self.deadlines.min, next.at <= now {
                self.deadlines.removeMin()
                if self.remove(next.id) {
                    expired.append(next.id)
                }
            }
            return expired
        }

        /// The earliest deadline of a waiter still queued.
        mutating func nextDeadline() -> Instant? {
            while let next = self.deadlines.min {
                if self.contains(next.id) { return next.at }
                self.deadlines.removeMin()
            }
            return nil
        }

        /// Removes every waiter, oldest first.
        mutating func removeAll() -> [WaiterID] {
            var all: [WaiterID] = []
            while let entry = self.dequeue() { all.append(entry.id) }
            return all
        }
    }
}
