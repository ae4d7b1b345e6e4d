#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension OutstandingLeasesError: LocalizedError {
    /// The error's description, so that `localizedDescription` says what went wrong instead of "The operation could
    /// not be completed".
    public var errorDescription: String? { description }
}

extension ConditionNotReachedError: LocalizedError {
    /// The error's description, for `localizedDescription`.
    public var errorDescription: String? { description }
}

extension MockCreationError: LocalizedError {
    /// The error's description, for `localizedDescription`.
    public var errorDescription: String? { description }
}
