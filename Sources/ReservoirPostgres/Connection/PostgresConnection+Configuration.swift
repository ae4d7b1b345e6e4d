import CLibPQ
import Foundation
import Tracing

extension PostgresConnection {
    /// How to reach and talk to a PostgreSQL server.
    ///
    /// Create it from a libpq connection string (`"host=db port=5432 dbname=app"`) or URI
    /// (`"postgresql://app@db/app?sslmode=require"`) with ``init(connectionString:)``, or from keyword fields with
    /// ``init(host:port:user:password:database:)``. Anything left out falls back to libpq's defaults, including
    /// its environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, …) and
    /// `~/.pgpass`.
    ///
    /// Invalid strings and unknown keywords are rejected here, before any connection attempt, with libpq's own
    /// message. The password never appears in ``description``, in log messages or in errors.
    public struct Configuration: Sendable, CustomStringConvertible, CustomReflectable {
        /// The libpq keywords and values given explicitly, in order.
        private(set) var parameters: [(String, String)]

        /// How long opening a connection may take, DNS and authentication included. Default: 10 seconds; must be
        /// greater than zero.
        ///
        /// libpq's own `connect_timeout` does not apply to non-blocking connects, so this one takes its place: a
        /// `connect_timeout` given in the connection string (or with ``set(_:to:)``) sets it, in whole seconds as
        /// libpq reads it. `connect_timeout=0` (libpq's "wait forever") leaves it unchanged: every wait here is
        /// bounded.
        public var connectTimeout: Duration = .seconds(10)

        /// How long a cancelled statement may take to stop after the server-side cancel request. Default: 5 seconds.
        ///
        /// The connection's reactor thread enforces it: when a cancelled statement has not ended by then (a frozen backend,
        /// a network that stopped answering), the connection is closed, the statement's caller gets its
        /// `CancellationError` at once, and the connection is never used again. The same bound applies to a `COMMIT`
        /// whose task is cancelled (it is awaited, not cancelled; see ``PostgresConnection/withTransaction(isolationLevel:readOnly:isolation:_:)``)
        /// and to the rollback after a cancelled transaction. ``PostgresPool`` sets it from its own
        /// ``PostgresPool/Configuration/cancellationGracePeriod``.
        public var cancellationGracePeriod: Duration = .seconds(5)

        /// How many prepared statements each connection keeps. Default: 256; must not be negative. `0` turns the
        /// cache off, and every statement is then sent unnamed (parsed and planned each time), as PgBouncer's
        /// transaction mode requires.
        public var statementCacheCapacity: Int = 256

        /// The tracer that records a client span per statement; `nil` (the default) uses the tracer bootstrapped
        /// through swift-distributed-tracing's `InstrumentationSystem`, if any. Decided when a connection opens: with
        /// no tracer, statements pay nothing for tracing. See `docs/operations.md` for the spans and attributes.
        public var tracer: (any Tracer)? = nil

        /// Creates a configuration from a libpq connection string or URI.
        ///
        /// - Parameter connectionString: `key=value` pairs or a `postgresql://` URI, as `psql` accepts them.
        /// - Throws: ``PostgresError`` (`.invalidConfiguration`) with libpq's message (password removed) when
        ///   the string does not parse or names an unknown keyword.
        public init(connectionString: String) throws {
            var errorMessage: UnsafeMutablePointer<CChar>?
            guard let options = PQconninfoParse(connectionString, &errorMessage) else {
                var message = "the connection string is invalid"
                if let errorMessage {
                    message = String(cString: errorMessage).trimmingNewlines()
                    PQfreemem(errorMessage)
                }
                throw PostgresError(
                    .invalidConfiguration,
                    message: "connectionString: " + Configuration.redactParseError(message, in: connectionString),
                    field: "connectionString"
                )
            }
            defer { PQconninfoFree(options) }
            var parameters: [(String, String)] = []
            var option = options
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val {
                    parameters.append((String(cString: keyword), String(cString: value)))
                }
                option += 1
            }
            self.parameters = parameters
            // libpq parses these only when it connects: check them now, naming the field.
            if let port = self["port"] { try Self.checkPort(port) }
            if let timeout = self["connect_timeout"] { try applyConnectTimeout(timeout) }
            try checkHostList()
        }

        /// Creates a configuration from keyword fields; `nil` leaves a field to libpq's defaults and environment.
        ///
        /// - Parameters:
        ///   - host: A host name, an IP address, or a Unix-socket directory (a path starting with `/`).
        ///   - port: The TCP port, or the number in the Unix socket's file name.
        ///   - user: The role to connect as.
        ///   - password: The password, if the server asks for one.
        ///   - database: The database name.
        /// - Throws: ``PostgresError`` (`.invalidConfiguration`) naming the field when a value is invalid.
        public init(
            host: String? = nil,
            port: Int? = nil,
            user: String? = nil,
            password: String? = nil,
            database: String? = nil
        ) throws {
            parameters = []
            if let host { try set("host", to: host) }
            if let port {
                guard (1...65535).contains(port) else {
                    throw PostgresError(
                        .invalidConfiguration,
                        message: "port: \(port) is not in 1...65535",
                        field: "port"
                    )
                }
                try set("port", to: String(port))
            }
            if let user { try set("user", to: user) }
            if let password { try set("password", to: password) }
            if let database { try set("dbname", to: database) }
        }

        /// Whether the connection string's `options` set a non-zero `statement_timeout` (as ``PostgresPool`` does from
        /// its ``PostgresPool/Configuration/statementTimeout``): a SQLSTATE 57014 that this side did not ask for is
        /// then reported as ``PostgresError/Code/statementTimeout``.
        var statementTimeoutInEffect: Bool {
            guard let options = self["options"], let range = options.range(of: "statement_timeout=") else {
                return false
            }
            let value = options[range.upperBound...].prefix { !$0.isWhitespace }
            return !value.isEmpty && value.contains { $0 != "0" && $0 != "'" }
        }

        /// The value of a libpq keyword given explicitly, or `nil`. The password is never returned.
        ///
        /// - Parameter keyword: A libpq keyword such as `host` or `sslmode`.
        public subscript(keyword: String) -> String? {
            guard keyword != "password" else { return nil }
            return parameters.last(where: { $0.0 == keyword })?.1
        }

        /// Sets a libpq connection keyword, such as `sslmode`, `application_name` or `options`.
        ///
        /// - Parameters:
        ///   - keyword: The libpq keyword.
        ///   - value: Its value.
        /// - Throws: ``PostgresError`` (`.invalidConfiguration`) when libpq does not know the keyword or the
        ///   value contains a NUL byte.
        public mutating func set(_ keyword: String, to value: String) throws {
            guard Configuration.knownKeywords.contains(keyword) else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "\(keyword): not a libpq connection keyword",
                    field: keyword
                )
            }
            guard !value.utf8.contains(0) else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "\(keyword): the value contains a NUL byte",
                    field: keyword
                )
            }
            if keyword == "port" { try Self.checkPort(value) }
            if keyword == "connect_timeout" { try applyConnectTimeout(value) }
            parameters.removeAll { $0.0 == keyword }
            parameters.append((keyword, value))
        }

        /// Checks the fields libpq does not check until it connects, so that a bad value fails here, naming the
        /// field, before any connection attempt. Pools and connections call it before connecting.
        ///
        /// - Throws: ``PostgresError`` (`.invalidConfiguration`) naming `connectTimeout`, `statementCacheCapacity`
        ///   or `port`.
        public func validate() throws {
            guard connectTimeout > .zero else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "connectTimeout: must be greater than zero (got \(connectTimeout))",
                    field: "connectTimeout"
                )
            }
            guard statementCacheCapacity >= 0 else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "statementCacheCapacity: must not be negative (got \(statementCacheCapacity))",
                    field: "statementCacheCapacity"
                )
            }
            if let port = self["port"] { try Self.checkPort(port) }
            try checkHostList()
        }

        /// The values of `target_session_attrs` that libpq (14 and later) accepts.
        static let targetSessionAttributes: Set<String> = [
            "any", "read-write", "read-only", "primary", "standby", "prefer-standby",
        ]

        /// Checks what libpq checks only when it connects about several hosts: as many ports as hosts (or one port
        /// for all), and a `target_session_attrs` it knows.
        func checkHostList() throws {
            if let attributes = self["target_session_attrs"], !Self.targetSessionAttributes.contains(attributes) {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "target_session_attrs: must be one of "
                        + Self.targetSessionAttributes.sorted().joined(separator: ", ")
                        + " (got \(attributes.count) characters)",
                    field: "target_session_attrs"
                )
            }
            guard let port = self["port"] else { return }
            let ports = port.split(separator: ",", omittingEmptySubsequences: false).count
            let hosts = max(
                self["host"].map { $0.split(separator: ",", omittingEmptySubsequences: false).count } ?? 1,
                self["hostaddr"].map { $0.split(separator: ",", omittingEmptySubsequences: false).count } ?? 1
            )
            guard ports == 1 || ports == hosts else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "port: \(ports) ports for \(hosts) hosts; give one port for all or one per host",
                    field: "port"
                )
            }
        }

        /// A port as libpq accepts it: a number in 1...65535, or a comma-separated list of them (one per host; an
        /// empty entry means the default port).
        static func checkPort(_ value: String) throws {
            for entry in value.split(separator: ",", omittingEmptySubsequences: false) {
                let entry = entry.trimmingCharacters(in: .whitespaces)
                if entry.isEmpty { continue }
                guard entry.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let port = Int(entry),
                    (1...65535).contains(port)
                else {
                    throw PostgresError(
                        .invalidConfiguration,
                        // The value is not echoed: a misplaced password can end up in the port's place.
                        message: "port: the value (\(entry.count) characters) is not a number in 1...65535",
                        field: "port"
                    )
                }
            }
        }

        /// Takes libpq's `connect_timeout` (whole seconds) as ``connectTimeout``.
        mutating func applyConnectTimeout(_ value: String) throws {
            let text = value.trimmingCharacters(in: .whitespaces)
            guard let seconds = Int(text) else {
                throw PostgresError(
                    .invalidConfiguration,
                    message: "connect_timeout: the value (\(text.count) characters) is not a whole number of seconds",
                    field: "connect_timeout"
                )
            }
            if seconds > 0 { connectTimeout = .seconds(seconds) }
        }

        public var description: String {
            "PostgresConnection.Configuration(\(redactedParameters.joined(separator: " ")), "
                + "connectTimeout: \(connectTimeout), statementCacheCapacity: \(statementCacheCapacity))"
        }

        /// What `dump()`, `Mirror` and debuggers show: the fields with the password replaced, never the password.
        public var customMirror: Mirror {
            Mirror(
                self,
                children: [
                    "parameters": redactedParameters,
                    "connectTimeout": connectTimeout,
                    "statementCacheCapacity": statementCacheCapacity,
                    "tracer": tracer.map { "\(type(of: $0))" } ?? "nil",
                ],
                displayStyle: .struct
            )
        }

        /// The explicit parameters as `key=value`, the password's value replaced.
        var redactedParameters: [String] {
            parameters.map { key, value in key == "password" ? "password=********" : "\(key)=\(value)" }
        }

        /// The parameters handed to `PQconnectStartParams`, with this driver's defaults added.
        func libpqParameters() -> [(String, String)] {
            var result = parameters
            // GSSAPI negotiation can block inside PQconnectPoll; opt in explicitly if you use Kerberos.
            if self["gssencmode"] == nil, ProcessInfo.processInfo.environment["PGGSSENCMODE"] == nil {
                result.append(("gssencmode", "disable"))
            }
            // Results are decoded from binary; text parameters and messages must be UTF-8.
            result.removeAll { $0.0 == "client_encoding" }
            result.append(("client_encoding", "UTF8"))
            if self["application_name"] == nil, self["fallback_application_name"] == nil {
                result.append(("fallback_application_name", "reservoir"))
            }
            return result
        }

        /// Removes the password from a message libpq produced about this configuration.
        func redact(_ message: String) -> String {
            var text = message
            if let password = parameters.last(where: { $0.0 == "password" })?.1, !password.isEmpty {
                text = text.replacingOccurrences(of: password, with: "********")
            }
            return text
        }

        /// Removes anything that looks like a password of `connectionString` from `message`.
        static func redact(_ message: String, in connectionString: String) -> String {
            var secrets: [String] = []
            // key=value form: password=secret or password = 'se cret'
            if let range = connectionString.range(of: #"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"#, options: .regularExpression) {
                let pair = connectionString[range]
                if let equals = pair.firstIndex(of: "=") {
                    let value = pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                    secrets.append(value.trimmingCharacters(in: CharacterSet(charactersIn: "'")))
                }
            }
            // URI form: scheme://user:secret@host
            if let range = connectionString.range(of: #"://[^/@:]*:([^@/]*)@"#, options: .regularExpression) {
                let match = connectionString[range]
                if let colon = match.dropFirst(3).firstIndex(of: ":") {
                    secrets.append(String(match[match.index(after: colon)..<match.index(before: match.endIndex)]))
                }
            }
            // URI query form: ?password=secret
            if let range = connectionString.range(of: #"[?&]password=([^&]*)"#, options: .regularExpression) {
                let match = connectionString[range]
                if let equals = match.firstIndex(of: "=") { secrets.append(String(match[match.index(after: equals)...])) }
            }
            var text = message
            for secret in secrets where !secret.isEmpty {
                text = text.replacingOccurrences(of: secret, with: "********")
            }
            return text
        }

        /// Redacts libpq's message about a connection string that did not parse, whatever the string's form.
        ///
        /// libpq quotes the part of the string it could not read, as the last fragment of the line
        /// (`missing "=" after "password:SECRET" in connection info string`, `invalid connection option
        /// "passwordSECRET"`, `invalid URI query parameter: "…"`, some URI errors quote the whole URI), so a typo
        /// around the password puts the password into the message. Known secrets are replaced first (as
        /// ``redact(_:in:)`` finds them); then that fragment, from its opening quote to the last quote of the line
        /// (it may contain quotes itself), is replaced by `…`. Only a name that reads as a keyword and is not
        /// password-like is kept (never after `missing "=" after`), so that `invalid connection option "bogus"`
        /// still says which.
        static func redactParseError(_ message: String, in connectionString: String) -> String {
            let text = redact(message, in: connectionString)
            return text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                guard let close = line.lastIndex(of: "\"") else { return String(line) }
                let openings = ["after \"", "option \"", ": \""].compactMap { marker -> (Range<Substring.Index>, String)? in
                    guard let range = line.range(of: marker), range.upperBound <= close else { return nil }
                    return (range, marker)
                }
                guard let (opening, marker) = openings.min(by: { $0.0.lowerBound < $1.0.lowerBound }) else {
                    // A quote without a known lead-in: hide everything after the first quote.
                    let first = line.firstIndex(of: "\"")!
                    return line[...first] + "…\""
                }
                let fragment = line[opening.upperBound..<close]
                let shown = marker != "after \"" && isKeywordLike(fragment) ? String(fragment) : "…"
                return line[..<opening.upperBound] + shown + line[close...]
            }.joined(separator: "\n")
        }

        /// Whether an unknown option name may be shown: a known keyword, or a short lowercase word that is not
        /// password-like.
        private static func isKeywordLike(_ fragment: Substring) -> Bool {
            if knownKeywords.contains(String(fragment)) { return true }
            guard (1...32).contains(fragment.utf8.count),
                fragment.utf8.allSatisfy({ (0x61...0x7A).contains($0) || $0 == 0x5F })
            else { return false }
            return !fragment.hasPrefix("pass") && !fragment.contains("password") && !fragment.contains("secret")
        }

        private static let knownKeywords: Set<String> = {
            var keywords = Set<String>()
            guard let defaults = PQconndefaults() else { return keywords }
            defer { PQconninfoFree(defaults) }
            var option = defaults
            while let keyword = option.pointee.keyword {
                keywords.insert(String(cString: keyword))
                option += 1
            }
            return keywords
        }()
    }
}
