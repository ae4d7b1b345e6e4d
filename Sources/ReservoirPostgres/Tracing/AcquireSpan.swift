import Synchronization
import Tracing

/// The span of one wait for a pooled connection, `acquire connection`, from the request to the connection in hand.
///
/// Attributes: `db.system.name`, `db.client.connection.pool.name`, `code.lease.site` (the acquire site),
/// `db.client.connection.wait_time` (seconds), and `reservoir.connection.new`: whether the connection had never
/// been leased before (opened for this request, or for the pool's minimum). On a failed acquire (timeout, circuit
/// breaker, shutdown, cancellation) the span records the error and `error.type`.
final class AcquireSpan: Sendable {
    /// What the pool's before-lease hook learns about the granted connection, for the span.
    final class Observation: Sendable {
        private let useCount = Mutex<Int?>(nil)

        func record(useCount count: Int) {
            useCount.withLock { $0 = count }
        }

        var recordedUseCount: Int? { useCount.withLock { $0 } }
    }

    /// Set around an acquire, so that the before-lease hook (awaited inside the acquire, in the same task) can
    /// report the granted connection's use count.
    @TaskLocal static var observation: Observation?

    let observation = Observation()
    private let span: any Span
    private let started = ContinuousClock.now
    private let ended = Mutex(false)

    init(tracer: any Tracer, poolName: String, site: String) {
        span = tracer.startSpan("acquire connection", ofKind: .internal)
        var attributes = SpanAttributes()
        attributes["db.system.name"] = "postgresql"
        attributes["db.client.connection.pool.name"] = poolName
        attributes["code.lease.site"] = site
        span.attributes = attributes
    }

    /// Ends the span: the connection is in hand.
    func acquired() {
        guard end() else { return }
        span.attributes["db.client.connection.wait_time"] = (ContinuousClock.now - started).seconds
        if let useCount = observation.recordedUseCount {
            span.attributes["reservoir.connection.new"] = useCount == 0
        }
        span.end()
    }

    /// Ends the span with the error that ended the wait; does nothing once the connection was acquired (errors of
    /// the caller's body belong to the statements' spans).
    func failed(_ error: any Error) {
        guard end() else { return }
        span.attributes["db.client.connection.wait_time"] = (ContinuousClock.now - started).seconds
        span.attributes["error.type"] = error is CancellationError ? "cancelled" : "\(type(of: error))"
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error))
        span.end()
    }

    /// Marks the span ended; true for the first caller only.
    private func end() -> Bool {
        ended.withLock { ended in
            defer { ended = true }
            return !ended
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
