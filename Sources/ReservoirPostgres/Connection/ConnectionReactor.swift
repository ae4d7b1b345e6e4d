import CLibPQ
import Foundation
import Glibc
import Synchronization

/// A thread that waits on the sockets of many connections at once (`epoll`), reads their results and resumes the
/// tasks that wait for them, several answers per wake-up. Each answer is handed back as it is read, and a task pinned
/// here runs at once, before the next socket is read: it sends its next statement while the other answers are read,
/// as pgbench's loop does. After a round of jobs the thread always looks at its sockets before the next round.
///
/// A connection opens on a short-lived thread of its own (DNS, TLS and authentication may block), then joins a
/// reactor for the rest of its life. With every connection on one thread, several answers that arrive together cost
/// one wake-up instead of one each, and two cores are no longer shared by a thread per connection: the model of
/// pgbench, whose single thread serves all its clients. Tasks pinned to a connection (`withTaskExecutorPreference`)
/// run on its reactor's thread between socket events.
///
/// Locking: the reactor's `lock` protects `jobs`, `dirty` and `polling`, and each connection's `reactorDirty`. A
/// connection calls in with its own lock held (`markDirty`), never the other way round: the reactor thread takes a
/// connection's lock only while it holds no lock of its own. Everything else here belongs to the reactor thread.
final class ConnectionReactor: @unchecked Sendable {
    /// The process's reactors, started on first use: half the processors (at least one), or
    /// `RESERVOIR_POSTGRES_IO_THREADS` when set.
    static let shared: [ConnectionReactor] = {
        let configured = ProcessInfo.processInfo.environment["RESERVOIR_POSTGRES_IO_THREADS"].flatMap { Int($0) }
        let count = max(1, min(64, configured ?? ProcessInfo.processInfo.activeProcessorCount / 2))
        return (0..<count).map { ConnectionReactor(index: $0) }
    }()

    private static let nextIndex = Atomic<Int>(0)

    private static let nextJobIndex = Atomic<Int>(0)

    /// The reactor a new connection joins: each in turn.
    static func next() -> ConnectionReactor {
        let all = shared
        return all[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % all.count]
    }

    /// The reactor whose thread is the calling thread, if any.
    static func current() -> ConnectionReactor? {
        let me = UInt(pthread_self())
        for reactor in shared where reactor.threadID.load(ordering: .relaxed) == me { return reactor }
        return nil
    }

    /// Where a job of a task that prefers ``PostgresIOExecutor`` runs: on the reactor whose thread enqueues it (the
    /// one that read the task's answer, so no thread is woken), else on each reactor in turn.
    static func forJob() -> ConnectionReactor {
        if let current = current() { return current }
        let all = shared
        if all.count == 1 { return all[0] }
        return all[nextJobIndex.wrappingAdd(1, ordering: .relaxed).oldValue % all.count]
    }

    private let lock = ConnectionLock()
    /// The reactor thread's `pthread_self()`, set before it runs anything (0 until then).
    private let threadID = Atomic<UInt>(0)
    private let epoll: Int32
    private let wakeup: Int32
    /// Jobs of tasks pinned to one of this reactor's connections or to ``PostgresIOExecutor``, with the executor each
    /// runs on (a connection is held strongly until its job has run).
    private var jobs: [(UnownedJob, JobExecutor)] = []
    /// Connections whose state changed outside the reactor (a command, a cancel, a close, a stream unpaused).
    private var dirty: [ConnectionCore] = []
    /// The thread is in (or about to enter) `epoll_wait` and must be woken through the eventfd.
    private var polling = false

    // MARK: Owned by the reactor thread.

    private var slots: [ConnectionCore?] = []
    private var freeSlots: [Int] = []
    /// The earliest deadline of any connection, as of the last turn.
    private var earliestDeadline: ContinuousClock.Instant?

    private static let wakeupToken = UInt64.max

    private init(index: Int) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeup = clibpq_wakeup_create()
        if epoll < 0 || wakeup < 0 {
            // Without them no connection could be served; nothing sensible can continue.
            fatalError("reservoir: could not create the PostgreSQL I/O thread's epoll or eventfd (errno \(errno))")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeupToken
        epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup, &event)
        let thread = Thread { [self] in run(index: index) }
        thread.name = "reservoir-pg-io"
        // A full-size stack: pinned tasks' synchronous code runs on it (there are few reactors, and only the pages
        // touched are used).
        thread.stackSize = 8 * 1024 * 1024
        thread.start()
    }

    // MARK: Called from other threads.

    /// Runs `job` on this reactor's thread as `executor`.
    func enqueue(_ job: UnownedJob, as executor: JobExecutor) {
        lock.lock()
        jobs.append((job, executor))
        wakeIfPolling()
        lock.unlock()
    }

    /// Asks the reactor to look at `core` again: it joined, or its wait changed. Callers may hold `core`'s lock.
    func markDirty(_ core: ConnectionCore) {
        lock.lock()
        if !core.reactorDirty {
            core.reactorDirty = true
            dirty.append(core)
        }
        wakeIfPolling()
        lock.unlock()
    }

    /// Requires `lock`.
    private func wakeIfPolling() {
        if polling {
            polling = false
            clibpq_wakeup_signal(wakeup)
        }
    }

    // MARK: The thread.

    private func run(index: Int) {
        clibpq_set_thread_name("reservoir-pg-io")
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        var batch: [(UnownedJob, JobExecutor)] = []
        batch.reserveCapacity(16)
        var changed: [ConnectionCore] = []
        changed.reserveCapacity(16)
        while true {
            lock.lock()
            polling = false
            swap(&batch, &jobs)
            swap(&changed, &dirty)
            for core in changed { core.reactorDirty = false }
            let idle = batch.isEmpty && changed.isEmpty
            if idle { polling = true }
            lock.unlock()

            if !idle {
                run(&batch)
                var completions = Completions()
                for core in changed { turn(core, readable: false, writable: false, completions: &completions) }
                changed.removeAll(keepingCapacity: true)
                completions.resumeAll()
            }

            // With work done this round, only a look at the sockets (no wait), then the queue again: jobs that keep
            // queueing more (a pinned task that yields in a loop) never keep the sockets from being read.
            let timeout = idle ? timeoutMilliseconds() : 0
            let count = events.withUnsafeMutableBufferPointer { buffer in
                epoll_wait(epoll, buffer.baseAddress, Int32(buffer.count), timeout)
            }
            // Awake: what is queued from now on is seen at the top of the loop, with no eventfd write (a task pinned
            // here, resumed below, queues its next job at once: a signal would cost a write, a read and a wasted wait).
            lock.lock()
            polling = false
            lock.unlock()
            if count > 0 {
                for event in events.prefix(Int(count)) {
                    let token = event.data.u64
                    if token == Self.wakeupToken {
                        clibpq_wakeup_drain(wakeup)
                        continue
                    }
                    guard let core = slots[Int(token)] else { continue }
                    let flags = event.events
                    var completions = Completions()
                    turn(
                        core,
                        readable: flags & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0,
                        writable: flags & (EPOLLOUT.rawValue | EPOLLERR.rawValue) != 0,
                        completions: &completions
                    )
                    // Hand this answer back, and run the task it resumes if that task runs here, before reading
                    // the next socket: the task sends its next statement now, and the server works on it while the
                    // other answers are read. Reading every answer first and then sending every next statement made
                    // client and server take turns instead of overlapping (measured in docs/postgres.md, Performance).
                    completions.resumeAll()
                    runQueuedJobs(&batch)
                }
            }
            var completions = Completions()
            if let earliest = earliestDeadline, earliest <= .now {
                // Every connection whose deadline passed gets a turn, which breaks it (or finds it has moved on).
                let now = ContinuousClock.now
                for case let core? in slots where core.reactorDeadline.map({ $0 <= now }) ?? false {
                    turn(core, readable: false, writable: false, completions: &completions)
                }
            }
            recomputeEarliestDeadline()
            completions.resumeAll()
        }
    }

    /// Runs the jobs in `batch`, then empties it (keeping its storage).
    private func run(_ batch: inout [(UnownedJob, JobExecutor)]) {
        for (job, executor) in batch {
            switch executor {
            case .connection(let core): job.runSynchronously(on: core.asUnownedTaskExecutor())
            case .io: job.runSynchronously(on: PostgresIOExecutor.shared.asUnownedTaskExecutor())
            }
        }
        batch.removeAll(keepingCapacity: true)
    }

    /// Runs the jobs queued so far, and those they queue in turn for a few rounds (a task that hands its connection to
    /// a waiting pinned task resumes it: that one sends at once too), using `batch`. Bounded, so that jobs that keep
    /// queueing more never keep the other sockets from being read.
    private func runQueuedJobs(_ batch: inout [(UnownedJob, JobExecutor)]) {
        for _ in 0..<4 {
            lock.lock()
            swap(&batch, &jobs)
            lock.unlock()
            if batch.isEmpty { return }
            run(&batch)
        }
    }

    /// One turn for `core`: its events handled, then its wait brought up to date (or it leaves, closed).
    private func turn(_ core: ConnectionCore, readable: Bool, writable: Bool, completions: inout Completions) {
        let interest = core.reactorTurn(readable: readable, writable: writable, completions: &completions)
        if interest.closing {
            leave(core, socket: interest.socket)
            core.shutDown()
            return
        }
        if core.reactorSlot == nil {
            if let slot = freeSlots.popLast() {
                slots[slot] = core
                core.reactorSlot = slot
            } else {
                core.reactorSlot = slots.count
                slots.append(core)
            }
        }
        let slot = core.reactorSlot!
        let wanted = interest.events
        if wanted != core.reactorEvents || (wanted != 0 && interest.socket != core.reactorSocket) {
            // Removed, not modified, when nothing is wanted: a socket waited on for no events would still report a
            // hang-up each turn.
            stopWaiting(on: core, socket: interest.socket)
            if wanted != 0 {
                var event = epoll_event()
                event.events = wanted
                event.data.u64 = UInt64(slot)
                if epoll_ctl(epoll, EPOLL_CTL_ADD, interest.socket, &event) != 0, errno == EEXIST {
                    // Still registered from before (a removal skipped for a socket libpq had replaced): update it.
                    epoll_ctl(epoll, EPOLL_CTL_MOD, interest.socket, &event)
                }
            }
            core.reactorEvents = wanted
            core.reactorSocket = interest.socket
        }
        core.reactorDeadline = interest.deadline
        if let deadline = interest.deadline, earliestDeadline.map({ deadline < $0 }) ?? true {
            earliestDeadline = deadline
        }
    }

    /// Removes `core`'s socket from the wait set, if it is there and still libpq's (`socket`, as libpq has it now).
    ///
    /// A socket libpq dropped is closed, and closing it removed it from the set; its number may already name another
    /// connection's socket, which must stay.
    private func stopWaiting(on core: ConnectionCore, socket: Int32) {
        if core.reactorEvents != 0, socket == core.reactorSocket {
            var none = epoll_event()
            epoll_ctl(epoll, EPOLL_CTL_DEL, socket, &none)
        }
        core.reactorEvents = 0
    }

    /// Stops waiting on `core`'s socket and frees its slot, before libpq closes the socket.
    private func leave(_ core: ConnectionCore, socket: Int32) {
        stopWaiting(on: core, socket: socket)
        if let slot = core.reactorSlot {
            slots[slot] = nil
            freeSlots.append(slot)
            core.reactorSlot = nil
        }
        core.reactorDeadline = nil
    }

    private func recomputeEarliestDeadline() {
        guard earliestDeadline != nil else { return }
        var earliest: ContinuousClock.Instant?
        for case let core? in slots {
            if let deadline = core.reactorDeadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        earliestDeadline = earliest
    }

    /// The wait's timeout: until the earliest deadline, rounded up; forever without one.
    private func timeoutMilliseconds() -> Int32 {
        guard let earliestDeadline else { return -1 }
        let remaining = ContinuousClock.now.duration(to: earliestDeadline)
        return remaining <= .zero ? 0 : ConnectionCore.pollMilliseconds(remaining)
    }
}

/// What a connection waits for: events on its socket, and a deadline; or that it is to close.
struct ReactorInterest {
    /// libpq's socket now, or -1.
    var socket: Int32
    var events: UInt32
    var deadline: ContinuousClock.Instant?
    var closing: Bool
}

/// The executor a reactor runs a job as.
enum JobExecutor {
    /// A connection on this reactor (`PostgresConnection.withPinnedExecution`, `pool.withTransaction`).
    case connection(ConnectionCore)
    /// ``PostgresIOExecutor`` (`pool.withPinnedExecution`).
    case io
}

/// The process's PostgreSQL I/O threads (the reactors) as one task executor.
///
/// A task that prefers it runs its non-isolated code on the reactor thread that read its last answer: the thread that
/// reads a result continues the task at once, and the task sends its next statement from there, with no thread
/// woken in the process. With the statements of many tasks in flight, one wake-up of a reactor reads several answers
/// and runs all their tasks: the model of pgbench, one thread serving all its clients. Jobs enqueued from elsewhere
/// (the task's first, or one resumed by another thread) go to the reactors in turn.
final class PostgresIOExecutor: TaskExecutor, Sendable {
    static let shared = PostgresIOExecutor()

    private init() {}

    func enqueue(_ job: consuming ExecutorJob) {
        ConnectionReactor.forJob().enqueue(UnownedJob(job), as: .io)
    }
}
