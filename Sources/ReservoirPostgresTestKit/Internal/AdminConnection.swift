import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A minimal PostgreSQL client for the server's own housekeeping: creating, cloning and dropping test databases and
/// holding the advisory lock of a template build.
///
/// This module depends on Foundation only (no libpq), and starting `psql` for each statement costs a process start
/// and a connection, several milliseconds, where a test database must be ready in a few. So this speaks the
/// frontend/backend protocol 3.0 itself, over the server's Unix socket, with the simple query protocol only, and
/// accepts only authentication that asks for no password (`trust` or `peer`, as the throwaway server's socket has).
///
/// Each connection does its blocking socket calls on its own serial dispatch queue (a thread of its own while a
/// statement runs), never on Swift's cooperative threads: `CREATE DATABASE` takes tens of milliseconds, and an
/// advisory lock may be waited for as long as another process needs to build a template.
final class AdminConnection: @unchecked Sendable {
    // `descriptor` is set in `init` and closed only in `close()`/`deinit`; every socket call runs on `queue`, one at
    // a time, so the descriptor and the read buffer are never used concurrently.
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private let queue = DispatchQueue(label: "PostgresTestServer.AdminConnection")
    // Written on `queue` and read by the task that awaited the statement, after its continuation resumed: the
    // resumption orders the two.
    /// The server's version as a number (150018 for 15.18), from the start-up parameters.
    private(set) var serverVersion: Int = 0
    /// Whether the last statement left the session idle and the connection usable.
    private(set) var isReusable = true

    /// The error a statement ended with: the server's message and SQLSTATE.
    struct ServerError: Error, CustomStringConvertible {
        var sqlState: String
        var message: String
        var detail: String?

        var description: String {
            "\(message) (SQLSTATE \(sqlState))" + (detail.map { " \($0)" } ?? "")
        }
    }

    /// Connects to `<socketDirectory>/.s.PGSQL.<port>` as `user` to `database`.
    ///
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/sqlFailed`` when the socket cannot be reached, the
    ///   server asks for a password, or refuses the connection.
    static func connect(socketDirectory: String, port: Int, user: String, database: String) async throws
        -> AdminConnection
    {
        let connection = try AdminConnection(path: socketDirectory + "/.s.PGSQL.\(port)")
        try await connection.run { try connection.startUp(user: user, database: database) }
        return connection
    }

    private init(path: String) throws {
        #if canImport(Glibc) || canImport(Musl)
            let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
            let socketType = SOCK_STREAM
        #endif
        let descriptor = socket(AF_UNIX, socketType, 0)
        guard descriptor >= 0 else {
            throw PostgresTestServerError(.sqlFailed, message: "Could not create a Unix socket: \(System.errorText()).")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            closeDescriptor(descriptor)
            throw PostgresTestServerError(.sqlFailed, message: "The socket path \(path) is too long for a Unix socket.")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connectSocket(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason = System.errorText()
            closeDescriptor(descriptor)
            throw PostgresTestServerError(
                .sqlFailed,
                message: "Could not connect to the server's Unix socket \(path): \(reason). Is the server running?"
            )
        }
        self.descriptor = descriptor
    }

    deinit {
        if descriptor >= 0 { closeDescriptor(descriptor) }
    }

    /// Runs one or more statements with the simple query protocol and returns the rows of the last result, each
    /// value as text (`nil` for NULL).
    ///
    /// - Throws: ``ServerError`` when a statement fails (the session stays usable); a
    ///   ``PostgresTestServerError`` when the connection breaks.
    func query(_ sql: String) async throws -> [[String?]] {
        try await run { try self.simpleQuery(sql) }
    }

    /// Sends Terminate and closes the socket. Safe to call more than once.
    func close() async {
        try? await run {
            guard self.descriptor >= 0 else { return }
            var message: [UInt8] = [UInt8(ascii: "X")]
            Self.appendInt32(4, to: &message)
            try? self.write(message)
            closeDescriptor(self.descriptor)
            self.descriptor = -1
            self.isReusable = false
        }
    }

    // MARK: - On the connection's queue

    private func run<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Swift.Result { try work() })
            }
        }
    }

    private func startUp(user: String, database: String) throws {
        var body: [UInt8] = []
        Self.appendInt32(196_608, to: &body)  // protocol 3.0
        for (key, value) in [
            ("user", user), ("database", database), ("application_name", "PostgresTestServer"),
            ("client_encoding", "UTF8"),
        ] {
            body += Array(key.utf8) + [0] + Array(value.utf8) + [0]
        }
        body.append(0)
        var message: [UInt8] = []
        Self.appendInt32(Int32(body.count + 4), to: &message)
        try write(message + body)

        var startupError: ServerError?
        while true {
            let (type, payload) = try readMessage()
            switch type {
            case UInt8(ascii: "R"):
                let code = Self.int32(payload, at: 0)
                guard code == 0 else {
                    throw PostgresTestServerError(
                        .sqlFailed,
                        message:
                            "The server asks for a password (authentication request \(code)) on its Unix socket; test "
                            + "databases need `trust` or `peer` there, as PostgresTestServer sets up."
                    )
                }
            case UInt8(ascii: "S"):
                let fields = Self.cStrings(payload)
                if fields.count >= 2, fields[0] == "server_version" {
                    serverVersion = Self.versionNumber(fields[1])
                }
            case UInt8(ascii: "E"):
                startupError = Self.serverError(payload)
            case UInt8(ascii: "Z"):
                return
            default:
                break  // BackendKeyData, notices
            }
            if let startupError {
                throw PostgresTestServerError(
                    .sqlFailed,
                    message: "The server refused the housekeeping connection: \(startupError)."
                )
            }
        }
    }

    private func simpleQuery(_ sql: String) throws -> [[String?]] {
        guard descriptor >= 0 else {
            throw PostgresTestServerError(.sqlFailed, message: "The housekeeping connection is closed.")
        }
        var message: [UInt8] = [UInt8(ascii: "Q")]
        let text = Array(sql.utf8) + [0]
        Self.appendInt32(Int32(text.count + 4), to: &message)
        try write(message + text)
        var rows: [[String?]] = []
        var failure: ServerError?
        while true {
            let (type, payload) = try readMessage()
            switch type {
            case UInt8(ascii: "T"):
                rows = []
            case UInt8(ascii: "D"):
                rows.append(Self.dataRow(payload))
            case UInt8(ascii: "E"):
                failure = Self.serverError(payload)
            case UInt8(ascii: "Z"):
                isReusable = payload.first == UInt8(ascii: "I")
                if let failure { throw failure }
                return rows
            case UInt8(ascii: "G"), UInt8(ascii: "H"), UInt8(ascii: "W"):
                isReusable = false
                throw PostgresTestServerError(
                    .sqlFailed, message: "COPY is not supported on the housekeeping connection.")
            default:
                break  // CommandComplete, EmptyQueryResponse, notices, parameter changes, notifications
            }
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                isReusable = false
                throw PostgresTestServerError(
                    .sqlFailed,
                    message: "The housekeeping connection broke while sending: \(System.errorText())."
                )
            }
            offset += written
        }
    }

    private func readMessage() throws -> (type: UInt8, payload: [UInt8]) {
        try fill(5)
        let type = buffer[0]
        let length = Int(Self.int32(buffer, at: 1))
        guard length >= 4 else {
            isReusable = false
            throw PostgresTestServerError(
                .sqlFailed, message: "The server sent a malformed message (length \(length)).")
        }
        try fill(1 + length)
        let payload = Array(buffer[5..<(1 + length)])
        buffer.removeFirst(1 + length)
        return (type, payload)
    }

    private func fill(_ count: Int) throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while buffer.count < count {
            let received = chunk.withUnsafeMutableBytes { raw in recv(descriptor, raw.baseAddress, raw.count, 0) }
            if received < 0 && errno == EINTR { continue }
            guard received > 0 else {
                isReusable = false
                throw PostgresTestServerError(
                    .sqlFailed,
                    message: received == 0
                        ? "The server closed the housekeeping connection."
                        : "The housekeeping connection broke: \(System.errorText())."
                )
            }
            buffer += chunk[0..<received]
        }
    }

    // MARK: - Encoding

    private static func appendInt32(_ value: Int32, to bytes: inout [UInt8]) {
        let bits = UInt32(bitPattern: value)
        bytes += [UInt8(bits >> 24), UInt8((bits >> 16) & 0xff), UInt8((bits >> 8) & 0xff), UInt8(bits & 0xff)]
    }

    private static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        Int32(
            bitPattern: UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
                | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3]))
    }

    private static func int16(_ bytes: [UInt8], at offset: Int) -> Int {
        Int(Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])))
    }

    private static func cStrings(_ bytes: [UInt8]) -> [String] {
        bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    private static func dataRow(_ payload: [UInt8]) -> [String?] {
        let count = int16(payload, at: 0)
        var offset = 2
        var values: [String?] = []
        for _ in 0..<max(0, count) {
            let length = Int(int32(payload, at: offset))
            offset += 4
            if length < 0 {
                values.append(nil)
            } else {
                values.append(String(decoding: payload[offset..<(offset + length)], as: UTF8.self))
                offset += length
            }
        }
        return values
    }

    private static func serverError(_ payload: [UInt8]) -> ServerError {
        var error = ServerError(sqlState: "XX000", message: "unknown error")
        var offset = 0
        while offset < payload.count, payload[offset] != 0 {
            let field = payload[offset]
            offset += 1
            let end = payload[offset...].firstIndex(of: 0) ?? payload.count
            let value = String(decoding: payload[offset..<end], as: UTF8.self)
            offset = end + 1
            switch field {
            case UInt8(ascii: "C"): error.sqlState = value
            case UInt8(ascii: "M"): error.message = value
            case UInt8(ascii: "D"): error.detail = value
            default: break
            }
        }
        return error
    }

    /// `15.18 (Debian …)` → 150018; `9.6.24` → 90624.
    private static func versionNumber(_ text: String) -> Int {
        let numbers = text.split(whereSeparator: { !$0.isNumber }).prefix(3).compactMap { Int($0) }
        guard let major = numbers.first else { return 0 }
        if major >= 10 { return major * 10_000 + (numbers.count > 1 ? numbers[1] : 0) }
        return major * 10_000 + (numbers.count > 1 ? numbers[1] * 100 : 0) + (numbers.count > 2 ? numbers[2] : 0)
    }
}

private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

private func connectSocket(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(descriptor, address, length)
}
