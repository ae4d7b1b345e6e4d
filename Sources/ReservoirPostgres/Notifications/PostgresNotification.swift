/// A notification sent with `NOTIFY channel, 'payload'` or `pg_notify(channel, payload)`.
public struct PostgresNotification: Sendable, Hashable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload; empty when none was given.
    public var payload: String
    /// The process ID of the server backend that sent it.
    public var processID: Int32
}

/// Notifications on one channel, as an async sequence.
///
/// Created by ``PostgresConnection/listen(_:)``. The sequence ends when the connection closes. When the
/// iterating task is cancelled or the sequence is dropped, the connection stops listening (`UNLISTEN`) once no
/// other listener on the same channel remains. Notifications are buffered without limit while nobody iterates.
public struct PostgresNotificationSequence: AsyncSequence, Sendable {
    public typealias Element = PostgresNotification
    public typealias Failure = Never

    let stream: AsyncStream<PostgresNotification>

    public func makeAsyncIterator() -> AsyncStream<PostgresNotification>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

extension PostgresConnection {
    /// Starts listening on `channel` and returns its notifications.
    ///
    /// Use a connection dedicated to listening: notifications are delivered while the connection is idle or
    /// between statements, and a pool would hand the connection (and its `LISTEN`) to someone else. The server
    /// only delivers notifications of committed transactions, and anything sent while the connection was down
    /// is lost: after reconnecting, listen again.
    ///
    /// - Parameter channel: The channel name (any text; it is quoted as an identifier).
    /// - Returns: The notifications, from now on.
    /// - Throws: ``PostgresError`` (`.invalidArgument`) for an empty channel name, or when `LISTEN` fails.
    public func listen(_ channel: String) async throws -> PostgresNotificationSequence {
        guard !channel.isEmpty, !channel.utf8.contains(0) else {
            throw PostgresError(.invalidArgument, message: "channel: must be non-empty and without NUL bytes")
        }
        let (stream, continuation) = AsyncStream<PostgresNotification>.makeStream()
        let id = core.makeScopeID()
        let first: Bool = core.lock.withLock {
            let first = core.listeners[channel]?.isEmpty ?? true
            core.listeners[channel, default: [:]][id] = continuation
            return first
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let last: Bool = self.core.lock.withLock {
                self.core.listeners[channel]?[id] = nil
                guard self.core.listeners[channel]?.isEmpty ?? false else { return false }
                self.core.listeners[channel] = nil
                return self.core.isConnected
            }
            if last {
                Task { [self] in try? await self.unsafeExecuteScript("UNLISTEN " + PostgresQuery.quoteIdentifier(channel)) }
            }
        }
        if first {
            do {
                try await unsafeExecuteScript("LISTEN " + PostgresQuery.quoteIdentifier(channel))
            } catch {
                continuation.finish()
                throw error
            }
        }
        return PostgresNotificationSequence(stream: stream)
    }

    /// Sends a notification (`pg_notify`), delivered to listeners when the current transaction commits.
    ///
    /// - Parameters:
    ///   - channel: The channel.
    ///   - payload: The payload, at most 8000 bytes.
    /// - Throws: ``PostgresError`` when the server rejects it.
    public func notify(channel: String, payload: String = "") async throws {
        try await execute("SELECT pg_notify(\(channel), \(payload))")
    }
}
