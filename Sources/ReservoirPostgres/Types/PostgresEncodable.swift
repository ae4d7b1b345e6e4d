/// A Swift value that can be bound as a statement parameter.
///
/// Conforming types say which PostgreSQL type they are sent as (``postgresType``) and in which format, and write
/// their bytes into a ``PostgresEncodingBuffer``. Integers, floating point, `Bool`, `String`, `[UInt8]`, `Data`,
/// `UUID`, `Date`, `Decimal`, ``PostgresJSON``, optionals and arrays of the common element types conform.
public protocol PostgresEncodable: Sendable {
    /// The type the server sees for this parameter.
    static var postgresType: PostgresDataType { get }
    /// The wire format ``encode(into:)`` writes; `.binary` unless a type overrides it.
    static var postgresFormat: PostgresFormat { get }
    /// Writes the value's bytes (without a length prefix) into `buffer`.
    ///
    /// - Parameter buffer: The buffer to append to. Call ``PostgresEncodingBuffer/writeNull()`` to send SQL NULL.
    func encode(into buffer: inout PostgresEncodingBuffer)
}

extension PostgresEncodable {
    public static var postgresFormat: PostgresFormat { .binary }
}

/// The bytes of one parameter being encoded.
///
/// Integers are written big-endian, as the binary wire format requires.
public struct PostgresEncodingBuffer: Sendable {
    @usableFromInline var bytes: [UInt8]
    @usableFromInline var isNull = false
    /// The first failure, boxed: every query carries this buffer, and an inline `PostgresError?` (some 300 bytes of
    /// strings) made each copy or destruction of a query go through an out-of-line copy or destruction of it; a `nil`
    /// reference is one word.
    @usableFromInline var failureBox: EncodingFailure?

    /// The first encoding failure, if any.
    var failure: PostgresError? { failureBox?.error }

    @inlinable init(bytes: [UInt8]) { self.bytes = bytes }

    /// Appends a fixed-width integer in network byte order.
    ///
    /// - Parameter value: The integer to append.
    @inlinable public mutating func writeInteger<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends raw bytes.
    ///
    /// - Parameter data: The bytes to append.
    @inlinable public mutating func writeBytes(_ data: some Sequence<UInt8>) {
        bytes.append(contentsOf: data)
    }

    /// Appends the UTF-8 bytes of a string, without a terminator.
    ///
    /// - Parameter string: The string to append.
    @inlinable public mutating func writeString(_ string: String) {
        var string = string
        string.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// Marks the value as SQL NULL; bytes written so far for it are ignored.
    public mutating func writeNull() { isNull = true }

    /// Records that the value could not be encoded; the query then throws this error before anything is sent.
    ///
    /// - Parameter message: What went wrong, without the value itself.
    public mutating func fail(_ message: String) {
        if failureBox == nil { failureBox = EncodingFailure(PostgresError(.encodingFailed, message: message)) }
    }
}

/// An encoding failure kept by reference in `PostgresEncodingBuffer`; immutable.
@usableFromInline final class EncodingFailure: Sendable {
    let error: PostgresError

    init(_ error: PostgresError) { self.error = error }
}

/// The bound parameters of a query, encoded and ready to send.
///
/// Values live in one contiguous byte array; per-parameter metadata in two more. Building a query with a few
/// parameters costs three small allocations, none when it has none.
public struct PostgresBindings: Sendable, Hashable {
    @usableFromInline struct Slot: Sendable, Hashable {
        @usableFromInline var offset: Int32
        /// -1 for SQL NULL.
        @usableFromInline var length: Int32
        @usableFromInline var format: Int32
        @inlinable init(offset: Int32, length: Int32, format: Int32) {
            self.offset = offset
            self.length = length
            self.format = format
        }
    }

    @usableFromInline var buffer = PostgresEncodingBuffer(bytes: [])
    @usableFromInline var slots: [Slot] = []
    @usableFromInline var types: [UInt32] = []

    /// Creates an empty list of bindings.
    public init() {}

    /// Creates an empty list with room for `capacity` parameters.
    ///
    /// - Parameter capacity: The number of parameters expected.
    public init(capacity: Int) {
        slots.reserveCapacity(capacity)
        types.reserveCapacity(capacity)
    }

    /// The number of bound parameters.
    public var count: Int { slots.count }

    /// The types of the bound parameters, in order.
    public var dataTypes: [PostgresDataType] { types.map(PostgresDataType.init(rawValue:)) }

    /// Appends one parameter.
    ///
    /// - Parameter value: The value to bind; `nil` binds SQL NULL.
    @inlinable public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        let start = buffer.bytes.count
        buffer.isNull = false
        value.encode(into: &buffer)
        if buffer.isNull {
            buffer.bytes.removeSubrange(start...)
            slots.append(Slot(offset: Int32(start), length: -1, format: Value.postgresFormat.rawValue))
        } else {
            slots.append(
                Slot(offset: Int32(start), length: Int32(buffer.bytes.count - start), format: Value.postgresFormat.rawValue)
            )
            // libpq reads text-format values up to a NUL terminator and ignores their length.
            if Value.postgresFormat == .text { buffer.bytes.append(0) }
        }
        types.append(Value.postgresType.rawValue)
    }

    /// The first encoding failure, if any value could not be encoded.
    var encodingFailure: PostgresError? { buffer.failure }

    public static func == (lhs: PostgresBindings, rhs: PostgresBindings) -> Bool {
        lhs.slots == rhs.slots && lhs.types == rhs.types && lhs.buffer.bytes == rhs.buffer.bytes
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(types)
        hasher.combine(buffer.bytes)
    }

    /// Calls `body` with the C arrays libpq's send functions take; the pointers are valid only inside `body`.
    func withUnsafeParameters<R>(
        _ body: (
            _ count: Int32,
            _ types: UnsafePointer<UInt32>?,
            _ values: UnsafePointer<UnsafePointer<CChar>?>?,
            _ lengths: UnsafePointer<Int32>?,
            _ formats: UnsafePointer<Int32>?
        ) -> R
    ) -> R {
        let count = slots.count
        if count == 0 { return body(0, nil, nil, nil, nil) }
        return buffer.bytes.withUnsafeBufferPointer { bytes in
            // libpq wants a non-NULL pointer even for empty values; a static empty string serves.
            let base = UnsafeRawPointer(bytes.baseAddress)
            return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { values in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: count * 2) { ints in
                    for index in 0..<count {
                        let slot = slots[index]
                        if slot.length < 0 {
                            values[index] = nil
                        } else if let base {
                            values[index] = (base + Int(slot.offset)).assumingMemoryBound(to: CChar.self)
                        } else {
                            values[index] = PostgresBindings.emptyValue
                        }
                        ints[index] = max(slot.length, 0)
                        ints[count + index] = slot.format
                    }
                    return types.withUnsafeBufferPointer { types in
                        body(
                            Int32(count), types.baseAddress, UnsafePointer(values.baseAddress),
                            UnsafePointer(ints.baseAddress), UnsafePointer(ints.baseAddress.map { $0 + count })
                        )
                    }
                }
            }
        }
    }

    // Immutable after initialisation, never written through.
    nonisolated(unsafe) private static let emptyValue: UnsafePointer<CChar> = {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return UnsafePointer(pointer)
    }()
}
