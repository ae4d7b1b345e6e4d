/// The pure core of the adaptive limit: samples in, a new limit out. Durations are nanoseconds as `Double`.
@usableFromInline
struct AdaptiveLimitStateMachine: Sendable {
    @usableFromInline let policy: AdaptiveLimitPolicy
    /// The limit as a real number, so small steps accumulate; the integer limit is its floor.
    @usableFromInline var estimate: Double
    /// Gradient: the no-load latency. Pool wait: unused.
    @usableFromInline var baseline: Double?
    @usableFromInline var windowCount = 0
    @usableFromInline var windowSum = 0.0
    /// The fastest sample of the window: the best estimate of the no-load latency it saw.
    @usableFromInline var windowMin = Double.infinity
    @usableFromInline var windowDropped = false
    /// The most operations in flight seen during the window (the utilisation guard).
    @usableFromInline var windowMaxInFlight = 0

    init(policy: AdaptiveLimitPolicy) {
        self.policy = policy
        self.estimate = Double(policy.initialLimit)
    }

    @inlinable
    var limit: Int { Int(estimate) }

    /// The latency (or wait) figure worth exporting: the baseline for the gradient, else the last window mean.
    @usableFromInline var latencyEstimate: Double = 0

    /// An operation finished. `inFlight` is the number in flight when it started (including itself).
    ///
    /// - Returns: The new integer limit when it changed.
    @inlinable
    mutating func sampleRecorded(latency: Double, inFlight: Int, dropped: Bool) -> Int? {
        let before = limit
        switch policy.base {
        case .aimd(let threshold, let backoffRatio):
            latencyEstimate = latency
            if dropped || latency > threshold.nanosecondsDouble {
                estimate = clamp(estimate * backoffRatio)
            } else if inFlight * 2 >= limit {
                estimate = clamp(estimate + 1)
            }
        case .gradient(let tolerance, let smoothing, let windowSize):
            addToWindow(latency, inFlight: inFlight, dropped: dropped)
            guard windowCount >= windowSize else { return nil }
            let mean = windowSum / Double(windowCount)
            let saturated = windowMaxInFlight * 2 >= limit
            // Baseline: the window's fastest sample (a window that queued everything still had its fastest request
            // queue least). It falls at once; it rises slowly, and only from windows that ran at under half the
            // limit, so sustained overload cannot drag it up.
            if let current = baseline {
                if windowMin < current {
                    baseline = windowMin
                } else if !saturated && !windowDropped {
                    baseline = current * 0.9 + windowMin * 0.1
                }
            } else if !windowDropped {
                baseline = windowMin
            }
            let base = baseline ?? mean
            latencyEstimate = base
            let gradient = windowDropped ? 0.5 : Swift.max(0.5, Swift.min(1, tolerance * base / mean))
            var target = estimate
            if gradient < 1 {
                target = estimate * gradient
            } else if saturated {
                target = estimate + estimate.squareRoot()
            }
            estimate = clamp(estimate * (1 - smoothing) + target * smoothing)
            resetWindow()
        case .poolWaitTime:
            // The pool-wait mode learns from `poolWaitRecorded`; operation samples only track utilisation.
            windowMaxInFlight = Swift.max(windowMaxInFlight, inFlight)
            if dropped { estimate = clamp(estimate * 0.9) }
        }
        return limit != before ? limit : nil
    }

    /// A pool reported how long an acquire waited.
    ///
    /// - Returns: The new integer limit when it changed.
    @inlinable
    mutating func poolWaitRecorded(wait: Double, inFlight: Int) -> Int? {
        guard case .poolWaitTime(let target, let backoffRatio, let windowSize) = policy.base else { return nil }
        let before = limit
        addToWindow(wait, inFlight: inFlight, dropped: false)
        guard windowCount >= windowSize else { return nil }
        let mean = windowSum / Double(windowCount)
        latencyEstimate = mean
        let targetNanoseconds = target.nanosecondsDouble
        if mean > targetNanoseconds {
            estimate = clamp(estimate * Swift.max(backoffRatio, targetNanoseconds / mean))
        } else if windowMaxInFlight * 2 >= limit {
            estimate = clamp(estimate + 1)
        }
        resetWindow()
        return limit != before ? limit : nil
    }

    @inlinable
    mutating func addToWindow(_ value: Double, inFlight: Int, dropped: Bool) {
        windowCount += 1
        windowSum += value
        windowMin = Swift.min(windowMin, value)
        windowDropped = windowDropped || dropped
        windowMaxInFlight = Swift.max(windowMaxInFlight, inFlight)
    }

    @inlinable
    mutating func resetWindow() {
        windowCount = 0
        windowSum = 0
        windowMin = .infinity
        windowDropped = false
        windowMaxInFlight = 0
    }

    @inlinable
    func clamp(_ value: Double) -> Double {
        Swift.min(Double(policy.maxLimit), Swift.max(Double(policy.minLimit), value))
    }
}
