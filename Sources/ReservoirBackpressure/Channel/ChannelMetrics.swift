import CoreMetrics

/// The metrics of one channel, created once.
///
/// | Name | Type | Dimensions | Meaning |
/// |---|---|---|---|
/// | `backpressure.channel.depth` | gauge | `channel` | buffered elements, sampled when producers suspend/resume |
/// | `backpressure.channel.producers_waiting` | meter | `channel` | producers suspended for room (sending or reserving) |
/// | `backpressure.channel.consumers_waiting` | meter | `channel` | consumers suspended on an empty channel |
/// | `backpressure.channel.dropped` | counter | `channel`, `reason` | elements passed to the drop callback |
/// | `backpressure.channel.producer_wait` | timer | `channel` | time a suspended producer waited |
@usableFromInline
struct ChannelMetrics: Sendable {
    /// False when the factory is swift-metrics' no-op handler: then the suspension path skips reading the clock
    /// (two reads cost ~170 ns on a VM, as much as a whole send) and the metric calls.
    @usableFromInline let isEnabled: Bool
    let depth: Gauge
    let producersWaiting: Meter
    let consumersWaiting: Meter
    let droppedOldest: Counter
    let droppedNewest: Counter
    let droppedCancelled: Counter
    let producerWait: Timer

    init(label: String, factory: any MetricsFactory) {
        let dimensions = [("channel", label)]
        self.isEnabled = !(factory is NOOPMetricsHandler)
        self.depth = Gauge(label: "backpressure.channel.depth", dimensions: dimensions, factory: factory)
        self.producersWaiting = Meter(
            label: "backpressure.channel.producers_waiting",
            dimensions: dimensions,
            factory: factory
        )
        self.consumersWaiting = Meter(
            label: "backpressure.channel.consumers_waiting",
            dimensions: dimensions,
            factory: factory
        )
        func dropped(_ reason: DropReason) -> Counter {
            Counter(
                label: "backpressure.channel.dropped",
                dimensions: dimensions + [("reason", reason.description)],
                factory: factory
            )
        }
        self.droppedOldest = dropped(.droppedOldest)
        self.droppedNewest = dropped(.droppedNewest)
        self.droppedCancelled = dropped(.channelCancelled)
        self.producerWait = Timer(label: "backpressure.channel.producer_wait", dimensions: dimensions, factory: factory)
    }

    @usableFromInline
    func dropped(_ reason: DropReason) {
        switch reason.base {
        case .droppedOldest: droppedOldest.increment()
        case .droppedNewest: droppedNewest.increment()
        case .channelCancelled: droppedCancelled.increment()
        }
    }

    @usableFromInline
    func producerSuspended(bufferedElements: Int) {
        depth.record(bufferedElements)
        producersWaiting.increment()
    }

    /// A producer suspended in `reserve`, which buffers nothing yet.
    @usableFromInline
    func reservingProducerSuspended() {
        producersWaiting.increment()
    }

    @usableFromInline
    func consumerSuspended() {
        consumersWaiting.increment()
    }

    @usableFromInline
    func consumerResumed() {
        consumersWaiting.decrement()
    }

    @usableFromInline
    func producerResumed(waited: Duration) {
        producersWaiting.decrement()
        producerWait.recordNanoseconds(waited.nanoseconds)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    @inlinable
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return total
    }
}
