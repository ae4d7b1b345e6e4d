import Synchronization

/// Rejects work at once when it would wait in a queue for longer than its caller can afford.
///
/// Feed it the service time of completed work; ask it, before queueing, whether the predicted wait —
/// `(queue depth + 1) ÷ concurrency × mean service time` — fits in the caller's remaining budget. Use it in front of
/// any queue (a pool, a channel, a worker set). ``ConcurrencyLimiter`` does the same for its own queue when given a
/// deadline.
///
/// ```swift
/// let shedder = LoadShedder()
/// try shedder.check(queueDepth: pool.waiting, concurrency: pool.size, budget: .milliseconds(200))
/// let started = ContinuousClock.now
/// try await work()
/// shedder.recordServiceTime(started.duration(to: .now))
/// ```
public final class LoadShedder: Sendable {
    private struct State {
        var meanServiceTime: Double = 0
        var samples = 0
    }

    private let state = Mutex(State())
    /// The weight of each new sample in the moving mean, in (0, 1].
    public let smoothing: Double

    /// Creates a load shedder.
    ///
    /// - Parameter smoothing: The weight of each new service-time sample in the moving mean; in (0, 1], default 0.1.
    /// - Throws: ``BackpressureError/Code/invalidConfiguration`` naming `smoothing`.
    public init(smoothing: Double = 0.1) throws(BackpressureError) {
        guard smoothing > 0, smoothing <= 1 else {
            throw .invalid("smoothing", "The smoothing must be in (0, 1], got \(smoothing).")
        }
        self.smoothing = smoothing
    }

    /// Records how long one unit of work took to serve.
    ///
    /// - Parameter serviceTime: The time from start to finish of the work (not counting its queueing).
    public func recordServiceTime(_ serviceTime: Duration) {
        let value = Swift.max(0, serviceTime.nanosecondsDouble)
        state.withLock { state in
            state.meanServiceTime =
                state.samples == 0 ? value : state.meanServiceTime * (1 - smoothing) + value * smoothing
            state.samples += 1
        }
    }

    /// The mean service time so far, or `nil` before the first sample.
    public var meanServiceTime: Duration? {
        state.withLock { $0.samples == 0 ? nil : .nanosecondsDouble($0.meanServiceTime) }
    }

    /// The predicted queueing time for a new arrival.
    ///
    /// - Parameters:
    ///   - queueDepth: How many are waiting ahead.
    ///   - concurrency: How many are served at once (at least 1 is assumed).
    /// - Returns: `(queueDepth + 1) / concurrency × mean service time`; zero before the first sample.
    public func predictedWait(queueDepth: Int, concurrency: Int) -> Duration {
        let mean = state.withLock { $0.meanServiceTime }
        return .nanosecondsDouble(Double(Swift.max(0, queueDepth) + 1) / Double(Swift.max(1, concurrency)) * mean)
    }

    /// Throws at once when the predicted queueing time exceeds `budget`.
    ///
    /// - Parameters:
    ///   - queueDepth: How many are waiting ahead.
    ///   - concurrency: How many are served at once.
    ///   - budget: How long the caller can afford to wait (its deadline minus now).
    /// - Throws: ``BackpressureError/Code/shed`` when the work should be rejected.
    public func check(queueDepth: Int, concurrency: Int, budget: Duration) throws(BackpressureError) {
        let predicted = predictedWait(queueDepth: queueDepth, concurrency: concurrency)
        if predicted > budget {
            throw BackpressureError(
                .shed,
                message:
                    "Predicted queueing time \(predicted) exceeds the remaining budget \(budget); rejected at once."
            )
        }
    }
}
