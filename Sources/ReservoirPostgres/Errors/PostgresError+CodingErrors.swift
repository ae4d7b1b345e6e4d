extension PostgresError {
    /// A description of a `Codable` error that names what failed and where, without the value that failed.
    ///
    /// `EncodingError.invalidValue` prints the value it refused (a parameter), and Foundation's JSON errors can quote
    /// the number or text they could not read (a row value); both would reach ``description`` and the logs through a
    /// plain `"\(error)"`. This keeps the case and the coding path; the error itself stays in
    /// ``PostgresError/underlying``.
    ///
    /// - Parameter error: The error thrown by an encoder, a decoder or a type's `Codable` conformance.
    /// - Returns: `typeMismatch at items[0].price`, `no value for key "name"`, or the error's description when it
    ///   is neither an `EncodingError` nor a `DecodingError`.
    static func describingWithoutValues(_ error: any Error) -> String {
        switch error {
        case let error as EncodingError:
            switch error {
            case .invalidValue(_, let context): return "invalid value" + Self.location(context.codingPath)
            @unknown default: return "encoding failed"
            }
        case let error as DecodingError:
            switch error {
            case .typeMismatch(let type, let context):
                return "type mismatch: expected \(type)" + Self.location(context.codingPath)
            case .valueNotFound(let type, let context):
                return "no value: expected \(type)" + Self.location(context.codingPath)
            case .keyNotFound(let key, let context):
                return "no value for key \"\(key.stringValue)\"" + Self.location(context.codingPath)
            case .dataCorrupted(let context):
                return "invalid data" + Self.location(context.codingPath)
            @unknown default:
                return "decoding failed"
            }
        default:
            return "\(error)"
        }
    }

    /// ` at items[0].price`, or nothing at the top level.
    private static func location(_ codingPath: [any CodingKey]) -> String {
        guard !codingPath.isEmpty else { return "" }
        var path = ""
        for key in codingPath {
            if let index = key.intValue {
                path += "[\(index)]"
            } else {
                path += (path.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return " at " + path
    }
}
