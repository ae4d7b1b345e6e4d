#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ResourcePoolError: LocalizedError {
    /// The error's description, so that `localizedDescription` says what went wrong instead of "The operation could
    /// not be completed".
    public var errorDescription: String? { description }
}
