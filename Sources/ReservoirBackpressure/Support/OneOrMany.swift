/// A tiny list that stores zero or one value inline and only allocates from the second value on.
///
/// State machines return their effects in these, so the common case (resume one waiter) never allocates.
@usableFromInline
enum OneOrMany<Value> {
    case none
    case one(Value)
    case many([Value])

    @inlinable
    init() { self = .none }

    @inlinable
    var isEmpty: Bool {
        if case .none = self { return true }
        return false
    }

    @inlinable
    var count: Int {
        switch self {
        case .none: 0
        case .one: 1
        case .many(let values): values.count
        }
    }

    @inlinable
    mutating func append(_ value: Value) {
        switch self {
        case .none:
            self = .one(value)
        case .one(let first):
            self = .many([first, value])
        case .many(var values):
            self = .none
            values.append(value)
            self = .many(values)
        }
    }

    @inlinable
    func visit(_ body: (Value) throws -> Void) rethrows {
        switch self {
        case .none: return
        case .one(let value): try body(value)
        case .many(let values): for value in values { try body(value) }
        }
    }

    @inlinable
    var array: [Value] {
        switch self {
        case .none: []
        case .one(let value): [value]
        case .many(let values): values
        }
    }
}

extension OneOrMany: Sendable where Value: Sendable {}
extension OneOrMany: Equatable where Value: Equatable {}
