import Foundation

extension PostgresTestServer {
    /// How to set up a throwaway server. Every field has a default that suits tests.
    ///
    /// The server is tuned for speed, not durability: `fsync`, `synchronous_commit` and `full_page_writes` are off,
    /// `wal_level` is `minimal`, `shared_buffers` is small and autovacuum is off. Anything in ``settings`` overrides
    /// these defaults.
    public struct Configuration: Sendable {
        /// The superuser created by `initdb`. Default `"postgres"`.
        public var user: String = "postgres"

        /// The superuser's password over TCP, or `nil` (the default) for a random one made at start-up.
        ///
        /// Every TCP connection must authenticate with `scram-sha-256`, so no other local user can use the server
        /// through its port; the Unix socket stays `trust`, but its folder (mode 0700) admits only this process's
        /// user, so tools and set-up code never need the password. ``PostgresTestServer/connection`` carries it
        /// (``ConnectionDetails/tcpConnectionString`` includes it), and no description or dump shows it.
        public var password: String?

        /// TLS for TCP connections, or `nil` (the default) for none. See ``TLS``.
        public var tls: TLS?

        /// The database that connection details point at; created (owned by ``user``) when it is not `postgres`.
        /// Default `"postgres"`.
        public var database: String = "postgres"

        /// Additional login roles created after the first start. A role with a password must authenticate with
        /// `scram-sha-256` over TCP, which lets a test check what a wrong password does.
        public var roles: [Role] = []

        /// Server settings passed as `-c name=value`, such as `["max_connections": "20"]` or
        /// `["statement_timeout": "5s"]`. They override the defaults listed on ``Configuration``.
        public var settings: [String: String] = [:]

        /// Whether the server can have streaming standbys (``PostgresTestServer/startStandby()``): `wal_level` is
        /// then `replica` and `max_wal_senders` 8, instead of the faster `minimal` and 0. Default `false`.
        public var allowsStandbys: Bool = false

        /// Whether autovacuum runs. Default `false`, so that background work does not disturb measurements.
        public var autovacuum: Bool = false

        /// `shared_buffers`. Default `"32MB"`: start-up stays fast; raise it for benchmarks on larger data.
        public var sharedBuffers: String = "32MB"

        /// The TCP port on 127.0.0.1, or `nil` (the default) to pick a free one; a port taken between the pick and
        /// the server's bind is retried with a new one.
        public var port: Int?

        /// Folders searched for `initdb` and `postgres`, in order, or `nil` (the default) for `PATH`, then
        /// `pg_config --bindir`, then `/usr/lib/postgresql/<newest>/bin`.
        public var binarySearchPath: [String]?

        /// The folder in which the server's private folder is made, or `nil` (the default) for: `TMPDIR` when this
        /// process is not root and sets it; otherwise `/dev/shm` when it has at least 2 GiB free (a file system in
        /// memory, where creating and cloning databases takes about half the time); otherwise `/tmp`. The Unix socket
        /// lives there too, so the path must stay short (at most 70 bytes).
        public var temporaryDirectory: String?

        /// Whether servers start from a copy of a cluster initialised once per process (the default) instead of
        /// running `initdb` each time.
        ///
        /// The copy takes about a third of `initdb`'s time. The template lives in its own folder next to the
        /// servers' until the process exits. Turn it off to test `initdb` itself or when disk space is tight.
        public var usesTemplateCluster: Bool = true

        /// The unprivileged user that runs the server programs when this process runs as root (PostgreSQL refuses
        /// to run as root). Default `"postgres"`, which the `postgresql` package creates. Ignored when not root.
        public var serverUser: String = "postgres"

        /// How long `start()` waits for the server to accept connections. Default 60 seconds: start-up takes a
        /// second or two, but a loaded CI machine can be much slower.
        public var startupTimeout: Duration = .seconds(60)

        /// How long `stop()` waits for the server to exit before it escalates to an immediate shutdown, then kills
        /// it. Default 30 seconds.
        public var shutdownTimeout: Duration = .seconds(30)

        /// Creates a configuration with the defaults.
        public init() {}

        /// Creates a configuration.
        ///
        /// - Parameters:
        ///   - user: The superuser's name.
        ///   - password: The superuser's password for TCP connections, or `nil` for a random one.
        ///   - database: The database the connection details point at.
        ///   - roles: Additional login roles.
        ///   - settings: Server settings passed as `-c name=value`.
        public init(
            user: String = "postgres",
            password: String? = nil,
            database: String = "postgres",
            roles: [Role] = [],
            settings: [String: String] = [:]
        ) {
            self.user = user
            self.password = password
            self.database = database
            self.roles = roles
            self.settings = settings
        }
    }

    /// A certificate and key for the server's TLS (`ssl = on`), such as one made by `openssl` in a test.
    ///
    /// The files are copied into the server's data folder (owned by the server's user, mode 0600) at start-up, so
    /// they may live anywhere this process can read. Clients then choose with libpq's `sslmode`: `require`
    /// encrypts, `verify-full` (with `sslrootcert` naming the certificate authority) also checks the certificate
    /// and the host name.
    public struct TLS: Sendable, Hashable {
        /// The server's certificate (PEM), possibly followed by intermediate certificates.
        public var certificateFile: String
        /// The certificate's private key (PEM, unencrypted).
        public var keyFile: String
        /// Whether TCP connections without TLS are refused (`hostssl` in `pg_hba.conf`). Default `false`: both are
        /// accepted, as libpq's default `sslmode=prefer` expects.
        public var isRequired: Bool

        /// Creates a TLS set-up.
        ///
        /// - Parameters:
        ///   - certificateFile: Path of the server's certificate (PEM).
        ///   - keyFile: Path of its private key (PEM, unencrypted).
        ///   - isRequired: Whether TCP connections without TLS are refused.
        public init(certificateFile: String, keyFile: String, isRequired: Bool = false) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.isRequired = isRequired
        }
    }

    /// A login role created on the test server.
    public struct Role: Sendable, Hashable {
        /// The role's name.
        public var name: String
        /// The role's password, or `nil` for a role that logs in over the Unix socket only (TCP always asks for a
        /// password).
        public var password: String?
        /// Whether the role is a superuser. Default `false`.
        public var isSuperuser: Bool

        /// Creates a role description.
        ///
        /// - Parameters:
        ///   - name: The role's name (1 to 63 bytes, no double quote, no control characters).
        ///   - password: The password, required over TCP with `scram-sha-256`; `nil` for none (no TCP logins).
        ///   - isSuperuser: Whether the role is a superuser.
        public init(name: String, password: String? = nil, isSuperuser: Bool = false) {
            self.name = name
            self.password = password
            self.isSuperuser = isSuperuser
        }
    }
}

extension PostgresTestServer.Configuration {
    /// Checks every field; throws naming the first that cannot work.
    func validate() throws {
        try Self.validateIdentifier(user, field: "user")
        try Self.validateIdentifier(database, field: "database")
        try Self.validatePassword(password, field: "password")
        var names: Set<String> = [user]
        for (index, role) in roles.enumerated() {
            try Self.validateIdentifier(role.name, field: "roles[\(index)].name")
            try Self.validatePassword(role.password, field: "roles[\(index)].password")
            guard names.insert(role.name).inserted else {
                throw invalid("roles[\(index)].name", "duplicates the name \"\(role.name)\" of another role or user")
            }
        }
        for (name, value) in settings {
            guard Self.isSettingName(name) else {
                throw invalid("settings", "has the name \"\(name)\", which is not a server setting name")
            }
            guard !value.contains(where: { $0 == "\0" || $0.isNewline }) else {
                throw invalid("settings[\"\(name)\"]", "contains a line break or NUL character")
            }
        }
        guard !sharedBuffers.isEmpty else {
            throw invalid("sharedBuffers", "is empty")
        }
        if let port, !(1...65535).contains(port) {
            throw invalid("port", "is \(port), outside 1...65535")
        }
        if let searchPath = binarySearchPath, searchPath.contains(where: { !$0.hasPrefix("/") }) {
            throw invalid("binarySearchPath", "must hold absolute folder paths")
        }
        if let tls {
            for (field, path) in [("tls.certificateFile", tls.certificateFile), ("tls.keyFile", tls.keyFile)] {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw invalid(field, "names \(path), which is not a readable file")
                }
            }
        }
        if let temporaryDirectory, !temporaryDirectory.hasPrefix("/") {
            throw invalid("temporaryDirectory", "must be an absolute path")
        }
        guard startupTimeout > .zero else {
            throw invalid("startupTimeout", "must be positive")
        }
        guard shutdownTimeout > .zero else {
            throw invalid("shutdownTimeout", "must be positive")
        }
    }

    /// The settings the server starts with: the fast defaults, then ``settings`` over them.
    func effectiveSettings(port: Int, socketDirectory: String) -> [(name: String, value: String)] {
        var merged: [String: String] = [
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "shared_buffers": sharedBuffers,
            "autovacuum": autovacuum ? "on" : "off",
            "dynamic_shared_memory_type": "posix",
            "logging_collector": "off",
            "log_destination": "stderr",
        ]
        if tls != nil {
            merged["ssl"] = "on"
            merged["ssl_cert_file"] = "server.crt"
            merged["ssl_key_file"] = "server.key"
        }
        if allowsStandbys {
            merged["wal_level"] = "replica"
            merged["max_wal_senders"] = "8"
        }
        merged.merge(settings) { _, user in user }
        // Where the server listens is not negotiable: loopback only, in the private folder.
        merged["listen_addresses"] = "127.0.0.1"
        merged["port"] = String(port)
        merged["unix_socket_directories"] = socketDirectory
        return merged.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
    }

    private static func validateIdentifier(_ name: String, field: String) throws {
        guard !name.isEmpty, name.utf8.count <= 63 else {
            throw invalid(field, "must be 1 to 63 bytes long")
        }
        guard
            !name.contains(where: {
                $0 == "\"" || $0.unicodeScalars.contains { $0.properties.generalCategory == .control }
            })
        else {
            throw invalid(field, "must not contain a double quote or control characters")
        }
    }

    private static func validatePassword(_ password: String?, field: String) throws {
        guard let password else { return }
        guard !password.isEmpty else {
            throw invalid(field, "is empty; use nil for no password")
        }
        guard !password.contains(where: { $0 == "\0" || $0.isNewline }) else {
            throw invalid(field, "contains a line break or NUL character")
        }
    }

    private static func isSettingName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII
                && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_"
                    || scalar == ".")
        }
    }
}

private func invalid(_ field: String, _ problem: String, file: String = #fileID, line: Int = #line)
    -> PostgresTestServerError
{
    PostgresTestServerError(
        .invalidConfiguration,
        message: "Configuration field `\(field)` \(problem).",
        field: field,
        file: file,
        line: line
    )
}

// Passwords never show in descriptions, debug output or mirrors (test runners print arguments with these).

extension PostgresTestServer.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// A readable summary; never contains a password.
    public var description: String {
        "Configuration(user: \(user), password: \(password == nil ? "generated" : "<hidden>"), database: \(database), "
            + "roles: \(roles), settings: \(settings.sorted { $0.key < $1.key }), autovacuum: \(autovacuum), "
            + "sharedBuffers: \(sharedBuffers), port: \(port.map(String.init) ?? "free"))"
    }

    /// The same as `description`: never contains a password.
    public var debugDescription: String { description }

    /// A mirror that hides the password, so `dump` and test runners never print it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "user": user, "password": password == nil ? "generated" : "<hidden>", "database": database,
                "tls": tls as Any,
                "roles": roles, "settings": settings, "autovacuum": autovacuum, "sharedBuffers": sharedBuffers,
                "port": port as Any, "usesTemplateCluster": usesTemplateCluster,
                "binarySearchPath": binarySearchPath as Any,
                "temporaryDirectory": temporaryDirectory as Any, "serverUser": serverUser,
                "startupTimeout": startupTimeout, "shutdownTimeout": shutdownTimeout,
            ]
        )
    }
}

extension PostgresTestServer.Role: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// A readable summary; never contains a password.
    public var description: String {
        "Role(\(name), password: \(password == nil ? "none" : "<hidden>")\(isSuperuser ? ", superuser" : ""))"
    }

    /// The same as `description`: never contains a password.
    public var debugDescription: String { description }

    /// A mirror that hides the password, so `dump` and test runners never print it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: ["name": name, "password": password == nil ? "none" : "<hidden>", "isSuperuser": isSuperuser]
        )
    }
}
