import Foundation

extension PostgresError: LocalizedError {
    /// The error's description, so that `localizedDescription` says what went wrong instead of "The operation could
    /// not be completed".
    public var errorDescription: String? { description }
}

extension PostgresDecodingFailure: LocalizedError {
    /// What could not be decoded, for `localizedDescription` (the row's error adds the column and the types).
    public var errorDescription: String? {
        switch kind {
        case .typeMismatch: "The column's type cannot be decoded as the requested Swift type."
        case .unexpectedNull: "The column is NULL, but the requested Swift type is not optional."
        case .invalidValue(let reason): "The value is not valid for its type: \(reason)"
        }
    }
}
