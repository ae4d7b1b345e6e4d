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
    ///
    /// The queue entry is the one record of a waiter: besides its id and enqueue time it carries the shell's
    /// ``WaiterPayload`` (its hand-off box), which the queue keeps and hands back in `.resume`/`.fail`, and never
    /// looks into.
    @usableFromInline
    struct WaiterQueue: Sendable {
        @usableFromInline
        struct Entry: Sendable, Equatable {
            @usableFromInline var id: WaiterID
            @usableFromInline var enqueuedAt: Instant
            /// The shell's record, attached right after enqueueing (`nil` in state machine tests).
            @usableFromInline var payload: WaiterPayload?
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
                self.retries.append(Entry(id: id, enqueuedAt: now, payload: nil))
            } else {
                id = self.nextID
                self.nextID += 1
                self.entries.append(Entry(id: id, enqueuedAt: now, payload: nil))
            }
            self.count += 1
            if let deadline {
                self.deadlines.insert(Deadline(at: deadline, id: id))
            }
            return id
        }

        /// Attaches the shell's record to the waiter just queued under `id` (the back of its deque).
        @usableFromInline
        mutating func attach(_ payload: WaiterPayload, to id: WaiterID) {
            if id & Self.retryBit == 0 {
                precondition(self.entries.last?.id == id, "a payload was attached to a waiter that is not the last")
                self.entries[self.entries.count - 1].payload = payload
            } else {
                precondition(self.retries.last?.id == id, "a payload was attached to a waiter that is not the last")
                self.retries[self.retries.count - 1].payload = payload
            }
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

        /// Removes a waiter wherever it is. Returns its entry, or `nil` when it is not queued.
        ///
        /// A waiter removed from the middle stays in its deque, marked in `removed`, until it reaches the front; its
        /// payload is taken out at once. Ids in a deque are consecutive (each deque numbers its waiters one by one
        /// and loses them only at the front), so the entry of `id` is at `id - front.id`.
        mutating func remove(_ id: WaiterID) -> Entry? {
            guard self.contains(id) else { return nil }
            self.count -= 1
            let entry: Entry
            if self.entries.first?.id == id {
                entry = self.entries.removeFirst()
                self.purgeFront()
            } else if self.retries.first?.id == id {
                entry = self.retries.removeFirst()
                self.purgeFront()
            } else if id & Self.retryBit == 0 {
                entry = Self.takeFromMiddle(id, of: &self.entries)
                self.removed.insert(id)
            } else {
                entry = Self.takeFromMiddle(id, of: &self.retries)
                self.removed.insert(id)
            }
            return entry
        }

        /// The entry of a waiter behind the front of `deque`, with its payload moved out of the deque.
        private static func takeFromMiddle(_ id: WaiterID, of deque: inout Deque<Entry>) -> Entry {
            let index = Int(id - deque[deque.startIndex].id)
            let entry = deque[index]
            deque[index].payload = nil
            return entry
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
        mutating func removeExpired(now: Instant) -> [Entry] {
            var expired: [Entry] = []
            while let next = self.deadlines.min, next.at <= now {
                self.deadlines.removeMin()
                if let entry = self.remove(next.id) {
                    expired.append(entry)
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
        mutating func removeAll() -> [Entry] {
            var all: [Entry] = []
            while let entry = self.dequeue() { all.append(entry) }
            return all
        }
    }

    /// The shell's record of a waiter (its hand-off box), kept in the waiter's queue entry and handed back with the
    /// action that serves or fails it, so that a waiter has one record, not one in the queue and another in a table
    /// kept in step with it.
    ///
    /// The state machine only stores it and compares it by identity (actions are `Equatable`); it never calls it.
    /// It is an opaque reference rather than a generic parameter so that the machine, its actions and its tests stay
    /// non-generic; the shell, which knows the type, converts it back without a check (`unsafeDowncast`).
    @usableFromInline
    struct WaiterPayload: Sendable, Equatable {
        @usableFromInline let object: any AnyObject & Sendable

        @inlinable
        init(_ object: any AnyObject & Sendable) {
            self.object = object
        }

        @inlinable
        static func == (lhs: WaiterPayload, rhs: WaiterPayload) -> Bool {
            lhs.object === rhs.object
        }
    }
}
