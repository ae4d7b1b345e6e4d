import Foundation

extension PostgresTestServer {
    /// How a client reaches the server: over its Unix socket or over TCP on 127.0.0.1.
    public struct Transport: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case unixSocket
            case tcp
        }

        private let base: Base

        /// The Unix socket in the server's private folder. Authentication is always `trust` there.
        public static let unixSocket = Transport(base: .unixSocket)
        /// TCP on 127.0.0.1. Every role must authenticate with `scram-sha-256`: the superuser with the server's
        /// password (``ConnectionDetails/password``), other roles with their own; a role without one cannot log in
        /// over TCP.
        public static let tcp = Transport(base: .tcp)

        var isUnixSocket: Bool { base == .unixSocket }

        /// `unixSocket` or `tcp`.
        public var description: String { isUnixSocket ? "unixSocket" : "tcp" }
    }

    /// Where the server listens and as whom to connect.
    ///
    /// `description` never shows the password; the connection strings and URLs do include it (TCP only), because a
    /// client needs it, so do not log those.
    public struct ConnectionDetails: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
        CustomReflectable
    {
        /// The folder holding the server's Unix socket (`.s.PGSQL.<port>`); libpq's `host` for a socket connection.
        public var socketDirectory: String
        /// The TCP host: always `"127.0.0.1"`.
        public var host: String
        /// The TCP port, also part of the socket's file name.
        public var port: Int
        /// The configured superuser.
        public var user: String
        /// The configured database.
        public var database: String
        /// The superuser's TCP password (the configured one or a random one); `nil` only in details made by hand
        /// without one. Never shown by ``description`` or `dump`.
        public var password: String?

        /// Creates connection details.
        ///
        /// - Parameters:
        ///   - socketDirectory: The folder holding the Unix socket.
        ///   - host: The TCP host.
        ///   - port: The port.
        ///   - user: The user.
        ///   - database: The database.
        ///   - password: The password, or `nil`.
        public init(
            socketDirectory: String,
            host: String = "127.0.0.1",
            port: Int,
            user: String,
            database: String,
            password: String? = nil
        ) {
            self.socketDirectory = socketDirectory
            self.host = host
            self.port = port
            self.user = user
            self.database = database
            self.password = password
        }

        /// A libpq keyword/value connection string for the Unix socket, such as
        /// `host=/tmp/reservoir-postgres-x1y2z3 port=54321 user=postgres dbname=postgres`. No password: the socket
        /// uses `trust`.
        public var unixSocketConnectionString: String {
            connectionString(transport: .unixSocket)
        }

        /// A libpq keyword/value connection string for TCP, such as
        /// `host=127.0.0.1 port=54321 user=postgres dbname=postgres password=…`: it contains the password, so do not
        /// log it.
        public var tcpConnectionString: String {
            connectionString(transport: .tcp)
        }

        /// A libpq keyword/value connection string, optionally as another role or to another database.
        ///
        /// Values are quoted as libpq requires (single quotes, backslash escapes) when they contain spaces, quotes or
        /// backslashes.
        ///
        /// - Parameters:
        ///   - transport: The Unix socket or TCP.
        ///   - user: The role to connect as; `nil` for ``user``.
        ///   - password: The password to send; `nil` for ``password`` when connecting as ``user`` over TCP.
        ///     A password is never added for the Unix socket unless given here.
        ///   - database: The database; `nil` for ``database``.
        ///   - options: Further keywords, appended in order (such as `["connect_timeout": "5"]`).
        /// - Returns: The connection string.
        public func connectionString(
            transport: Transport,
            user: String? = nil,
            password: String? = nil,
            database: String? = nil,
            options: KeyValuePairs<String, String> = [:]
        ) -> String {
            var pairs: [(String, String)] = [
                ("host", transport.isUnixSocket ? socketDirectory : host),
                ("port", String(port)),
                ("user", user ?? self.user),
                ("dbname", database ?? self.database),
            ]
            if let secret = effectivePassword(transport: transport, user: user, password: password) {
                pairs.append(("password", secret))
            }
            for (key, value) in options {
                pairs.append((key, value))
            }
            return pairs.map { "\($0.0)=\(Self.quoted($0.1))" }.joined(separator: " ")
        }

        /// A `postgresql://` URL, for tools and libraries that take one.
        ///
        /// For the Unix socket the folder goes in the `host` query parameter, as libpq expects.
        ///
        /// - Parameters:
        ///   - transport: The Unix socket or TCP.
        ///   - user: The role; `nil` for ``user``.
        ///   - password: The password; `nil` for ``password`` when connecting as ``user`` over TCP.
        ///   - database: The database; `nil` for ``database``.
        /// - Returns: The URL text.
        public func url(
            transport: Transport,
            user: String? = nil,
            password: String? = nil,
            database: String? = nil
        ) -> String {
            var components = URLComponents()
            components.scheme = "postgresql"
            components.user = user ?? self.user
            components.password = effectivePassword(transport: transport, user: user, password: password)
            components.path = "/" + (database ?? self.database)
            if transport.isUnixSocket {
                components.host = ""
                components.queryItems = [
                    URLQueryItem(name: "host", value: socketDirectory),
                    URLQueryItem(name: "port", value: String(port)),
                ]
            } else {
                components.host = host
                components.port = port
            }
            return components.string ?? ""
        }

        /// Describes the server without the password.
        public var description: String {
            "PostgreSQL test server: socket \(socketDirectory), tcp \(host):\(port), user \(user), "
                + "database \(database), password \(password == nil ? "none" : "set (hidden)")"
        }

        /// The same as ``description``: without the password.
        public var debugDescription: String { description }

        /// A mirror without the password, so `dump` and test runners never print it.
        public var customMirror: Mirror {
            Mirror(
                self,
                children: [
                    "socketDirectory": socketDirectory, "host": host, "port": port, "user": user,
                    "database": database, "password": password == nil ? "none" : "<hidden>",
                ]
            )
        }

        private func effectivePassword(transport: Transport, user: String?, password: String?) -> String? {
            if let password { return password }
            guard !transport.isUnixSocket, user == nil || user == self.user else { return nil }
            return self.password
        }

        /// Quotes a value for a libpq keyword/value string when needed.
        static func quoted(_ value: String) -> String {
            let needsQuotes =
                value.isEmpty || value.contains { $0 == " " || $0 == "'" || $0 == "\\" || $0.isWhitespace }
            guard needsQuotes else { return value }
            var escaped = "'"
            for character in value {
                if character == "'" || character == "\\" {
                    escaped.append("\\")
                }
                escaped.append(character)
            }
            return escaped + "'"
        }
    }
}
