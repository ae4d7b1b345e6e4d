import DequeModule

/// The rows of a streamed statement, read from the server as the consumer asks for them.
///
/// Created by ``PostgresConnection/stream(_:bufferSize:)``. Iterate it once. The statement is sent when the first
/// row is requested; breaking out of the loop (or dropping the iterator) stops it on the server and frees the
/// connection for the next command.
public struct PostgresRowSequence: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    public typealias Failure = any Error

    let core: ConnectionCore
    let query: PostgresQuery
    let bufferSize: Int
    let scope: UInt64?

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: StreamHandle(core: core, query: query, bufferSize: bufferSize, scope: scope))
    }

    /// Yields rows one by one; throws the server's error if the statement fails part-way.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let handle: StreamHandle
        private var chunk = Deque<PostgresResultStorage>()
        private var rowInChunk = 0

        init(handle: StreamHandle) { self.handle = handle }

        public mutating func next() async throws -> PostgresRow? {
            while true {
                if let storage = chunk.first {
                    if rowInChunk < storage.rowCount {
                        defer { rowInChunk += 1 }
                        return PostgresRow(storage: storage, index: Int32(rowInChunk))
                    }
                    chunk.removeFirst()
                    rowInChunk = 0
                    continue
                }
                guard let next = try await handle.nextChunk() else { return nil }
                chunk = next
            }
        }
    }
}

/// The consumer side of a stream; its `deinit` stops a stream that was abandoned part-way.
final class StreamHandle: Sendable {
    let core: ConnectionCore
    let state: StreamState
    let query: PostgresQuery
    let scope: UInt64?

    init(core: ConnectionCore, query: PostgresQuery, bufferSize: Int, scope: UInt64?) {
        self.core = core
        self.query = query
        self.scope = scope
        self.state = StreamState(highWatermark: bufferSize)
    }

    deinit {
        core.abandon(state)
    }

    /// Takes every buffered row result, waiting for some when none is buffered; `nil` at the end.
    ///
    /// A consumer whose task was cancelled gets `CancellationError` here, at the next chunk: it sees at most one
    /// buffer's worth of rows after the cancellation, and the statement is stopped on the server.
    func nextChunk() async throws -> Deque<PostgresResultStorage>? {
        if Task.isCancelled {
            core.abandon(state)
            throw CancellationError()
        }
        while true {
            core.lock.lock()
            if !state.buffer.isEmpty {
                let chunk = state.buffer
                state.buffer = Deque()
                state.bufferedRows = 0
                if state.paused {
                    state.paused = false
                    core.wakeThread()
                }
                core.lock.unlock()
                return chunk
            }
            if state.finished {
                let outcome = state.outcome
                core.lock.unlock()
                switch outcome {
                case .failure(let error): throw error
                case .cancelled: throw CancellationError()
                case .rows, .pipeline, .done, nil: return nil
                }
            }
            var completions = Completions()
            if state.command == nil {
                let command = Command(
                    id: core.makeCommandID(), kind: .stream(query, state), scope: scope, continuation: nil
                )
                state.command = command
                core.submit(
                    command, cancellable: true, deadline: nil, expiryOutcome: .cancelled, completions: &completions)
            }
            let commandID = state.command?.id ?? 0
            core.lock.unlock()
            completions.resumeAll()
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    core.lock.lock()
                    if !state.buffer.isEmpty || state.finished {
                        core.lock.unlock()
                        continuation.resume()
                    } else {
                        state.waiter = continuation
                        core.lock.unlock()
                    }
                }
            } onCancel: {
                core.cancel(commandID: commandID)
            }
        }
    }
}

/// The buffer between the reactor thread and a stream's consumer. Protected by the connection's lock.
final class StreamState: @unchecked Sendable {
    let highWatermark: Int
    var buffer = Deque<PostgresResultStorage>()
    var bufferedRows = 0
    var finished = false
    var outcome: CommandOutcome?
    var waiter: UnsafeContinuation<Void, Never>?
    /// Reading from the server is paused because the consumer has `highWatermark` rows to catch up on.
    var paused = false
    /// The consumer is gone: rows are dropped while the cancelled statement drains.
    var discarding = false
    var command: Command?
    /// The largest number of rows ever buffered; tests check it stays bounded.
    var maximumBufferedRows = 0

    init(highWatermark: Int) { self.highWatermark = highWatermark }

    func append(_ storage: PostgresResultStorage, completions: inout Completions) {
        buffer.append(storage)
        bufferedRows += storage.rowCount
        maximumBufferedRows = max(maximumBufferedRows, bufferedRows)
        if bufferedRows >= highWatermark { paused = true }
        if let waiter {
            self.waiter = nil
            completions.streamWakeups.append(waiter)
        }
    }

    func finish(_ outcome: CommandOutcome, completions: inout Completions) {
        guard !finished else { return }
        finished = true
        self.outcome = outcome
        paused = false
        if let waiter {
            self.waiter = nil
            completions.streamWakeups.append(waiter)
        }
    }
}

extension ConnectionCore {
    /// Stops a stream whose consumer went away: cancels it on the server and drops the rest of its rows.
    func abandon(_ state: StreamState) {
        var completions = Completions()
        lock.lock()
        if let command = state.command, !state.finished {
            state.discarding = true
            state.buffer.removeAll()
            state.bufferedRows = 0
            switch machine.cancelRequested(id: command.id, now: .now, gracePeriod: configuration.cancellationGracePeriod) {
            case .cancelWaiting:
                state.finish(.cancelled, completions: &completions)
            case .sendCancelRequest, .armDeadline:
                state.paused = false
                wakeThread()
            case .none:
                break
            }
        }
        lock.unlock()
        completions.resumeAll()
    }
}
