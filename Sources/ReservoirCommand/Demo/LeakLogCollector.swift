import Logging
import Synchronization

/// A `LogHandler` that counts the pool's leak warnings by acquire site, and forwards nothing.
///
/// The pool reports a lease dropped without release, and one held past the leak threshold, as warnings that carry
/// the acquire site in the `lease.site` metadata; the demo shows those sites live.
final class LeakLogCollector: Sendable {
    struct Counts: Sendable {
        var dropped: [String: Int] = [:]
        var heldTooLong: [String: Int] = [:]
        var warnings: [String] = []
    }

    private let counts = Mutex(Counts())

    var snapshot: Counts { counts.withLock { $0 } }

    func record(level: Logger.Level, message: String, metadata: Logger.Metadata) {
        guard level >= .warning else { return }
        let site = metadata["lease.site"].map { "\($0)" } ?? "(unknown site)"
        counts.withLock { counts in
            if message.contains("dropped without release") {
                counts.dropped[site, default: 0] += 1
            } else if message.contains("longer than the leak threshold") {
                counts.heldTooLong[site, default: 0] += 1
            }
            if counts.warnings.count < 100 {
                counts.warnings.append(message)
            }
        }
    }

    /// A logger whose warnings land here.
    func logger(label: String) -> Logger {
        Logger(label: label) { _ in Handler(collector: self) }
    }

    struct Handler: LogHandler {
        let collector: LeakLogCollector
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { _, new in new } }
            collector.record(level: event.level, message: "\(event.message)", metadata: merged)
        }
    }
}
