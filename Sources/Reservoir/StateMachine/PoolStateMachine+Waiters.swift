import DequeModule
import HeapModule

extension PoolStateMachine {
    /// FIFO queue of waiters with O(1) removal.
    ///
    /// Two deques: `retries` (callers whose resource failed validation; they keep their turn) is served before
    /// `entries`. Each deque draws its ids from its own range (retries have the top bit set), ids grow strictly in
    /// each deque's order, and entries leave a deque only from its front, so a waiter is still queued exactly when its
    /// id lies between its own deque's front and back ids and it is not in `removed` (removed from the middle and not
    /// yet skipped). Each front entry is always live: removals purge the fronts at once.
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
        @usableFromInline var retries: Deque<Entry> = []
        @usableFromInline var removed: Set<WaiterID> = []
        @usableFromInline var deadlines: Heap<Deadline> = Heap()
        @usableFromInline var nextID: WaiterID = 1
        @usableFromInline var nextRetryID: WaiterID = Self.retryBit | 1

        /// Set in the ids of retries, so that the two deques' id ranges never overlap.
        @usableFromInline static let retryBit: WaiterID = 1 << 63
        /// Waiters still queued (entries minus removed ones).
        @usableFromInline private(set) var count = 0

        @usableFromInline init() {}

        @inlinable var isEmpty: Bool { self.count == 0 }

        /// Deadlines still tracked (for tests: stale ones are pruned as they reach the front).
        var pendingDeadlineCount: Int { self.deadlines.count }

        /// The live entry served next.
        var first: Entry? { self.retries.first ?? self.entries.first }

        /// The live entry that has waited longest.
        var oldest: Entry? {
            guard let retry = self.retries.first else { return self.entries.first }
            guard let entry = self.entries.first else { return retry }
            return retry.enqueuedAt <= entry.enqueuedAt ? retry : entry
        }

        /// Queues a waiter at the back, or, for a retry, ahead of every first-time waiter.
        mutating func enqueue(now: Instant, deadline: Instant?, retry: Bool = false) -> WaiterID {
            let id: WaiterID
            if retry {
                id = self.nextRetryID
                self.nextRetryID += 1
                self.retries.append(Entry(id: id, enqueuedAt: now))
            } else {
                id = self.nextID
                self.nextID += 1
                self.entries.append(Entry(id: id, enqueuedAt: now))
            }
            self.count += 1
            if let deadline {
                self.deadlines.insert(Deadline(at: deadline, id: id))
            }
            return id
        }

        func contains(_ id: WaiterID) -> Bool {
            let deque = id & Self.retryBit == 0 ? self.entries : self.retries
            return Self.inRange(id, of: deque) && !self.removed.contains(id)
        }

        private static func inRange(_ id: WaiterID, of deque: Deque<Entry>) -> Bool {
            guard let first = deque.first, let last = deque.last else { return false }
            return id >= first.id && id <= last.id
        }

        /// Takes the waiter served next: retries first, then first-time waiters in FIFO order.
        mutating func dequeue() -> Entry? {
            let entry: Entry
            if let retry = self.retries.popFirst() {
                entry = retry
            } else if let first = self.entries.popFirst() {
                entry = first
            } else {
                return nil
            }
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
            } else if self.retries.first?.id == id {
                self.retries.removeFirst()
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
            while let first = self.retries.first, !self.removed.isEmpty, self.removed.remove(first.id) != nil {
                self.retries.removeFirst()
            }
            if self.entries.isEmpty && self.retries.isEmpty {
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
