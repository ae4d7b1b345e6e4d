#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension BackpressureError: LocalizedError {
    /// The error's description, so that `localizedDescription` says what went wrong instead of "The operation could
    /// not be completed".
    public var errorDescription: String? { description }
}

extension BoundedChannel.SendError: LocalizedError {
    /// Why the send failed, for `localizedDescription` (the element is not part of it).
    public var errorDescription: String? { description }
}
