import Foundation

extension PostgresTestServer {
    /// The schema migrations a test database starts with: SQL scripts, the `.sql` files of a folder, a Swift
    /// closure with an explicit version, or several of these in order.
    ///
    /// The migrations run once per server into a template database, which every test database is then cloned from.
    /// The template is found by ``key()``, a SHA-256 hash of what the migrations are: the text of each script, the
    /// name and content of each file, the version of each closure. Change any of them and the next test builds a
    /// new template; leave them alone and every test (also in another process using the same server) reuses the
    /// one built first.
    ///
    /// ```swift
    /// let migrations = PostgresTestServer.Migrations.sql(
    ///     "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL)",
    ///     "CREATE INDEX users_name ON users (name)"
    /// )
    /// ```
    public struct Migrations: Sendable {
        enum Step: Sendable {
            /// Scripts run by `psql` one after the other (`ON_ERROR_STOP`, so the first error fails the build).
            case sql([String])
            /// The `.sql` files of a folder, in the order of their names, each run by `psql`.
            case directory(String)
            /// Code that migrates the database it is given; `version` stands for what it does.
            case closure(version: String, migrate: @Sendable (Database) async throws -> Void)
        }

        let steps: [Step]

        /// No migrations: test databases are empty copies of `template1`.
        public static let none = Migrations(steps: [])

        /// SQL scripts, run in order by `psql` with `ON_ERROR_STOP=1`; a script may hold several statements and
        /// psql's meta-commands.
        ///
        /// - Parameter scripts: The scripts; their text is part of the key.
        /// - Returns: The migrations.
        public static func sql(_ scripts: String...) -> Migrations {
            sql(scripts)
        }

        /// SQL scripts, run in order by `psql` with `ON_ERROR_STOP=1`.
        ///
        /// - Parameter scripts: The scripts; their text is part of the key.
        /// - Returns: The migrations.
        public static func sql(_ scripts: [String]) -> Migrations {
            Migrations(steps: [.sql(scripts)])
        }

        /// The files ending in `.sql` directly in `path`, run by `psql` in the order of their names (so
        /// `001_users.sql` before `002_orders.sql`). Sub-folders and other files are ignored.
        ///
        /// The folder is read each time a test asks for a database, so editing a file between test runs builds a
        /// new template. A missing folder, or one without `.sql` files, fails with
        /// ``PostgresTestServerError/Code-swift.struct/invalidConfiguration``.
        ///
        /// - Parameter path: The folder, absolute or relative to the current directory.
        /// - Returns: The migrations.
        public static func directory(_ path: String) -> Migrations {
            Migrations(steps: [.directory(path)])
        }

        /// Migrations written in Swift: `migrate` receives the template database while it is built and does what
        /// it likes with it (through ``Database/psql(_:)``, or a client connected with
        /// ``Database/connectionString``).
        ///
        /// The code itself cannot be hashed, so `version` stands for it: change `version` whenever `migrate`
        /// changes, or tests keep getting the template built by the old code. Connections that `migrate` leaves
        /// open are closed before the template is used.
        ///
        /// - Parameters:
        ///   - version: Any text that changes when `migrate` changes, such as `"3"` or `"2026-05-01 add orders"`.
        ///   - migrate: The code; it runs once per server and migration set, never concurrently with itself for
        ///     the same set. It must not drop the database it is given.
        /// - Returns: The migrations.
        public static func closure(
            version: String,
            _ migrate: @escaping @Sendable (Database) async throws -> Void
        ) -> Migrations {
            Migrations(steps: [.closure(version: version, migrate: migrate)])
        }

        /// These migrations, then `next`.
        ///
        /// - Parameter next: The migrations to run after these.
        /// - Returns: Both, in order; the key covers both.
        public func followed(by next: Migrations) -> Migrations {
            Migrations(steps: steps + next.steps)
        }

        /// The template's key: the SHA-256 of the migrations, as 64 hexadecimal digits.
        ///
        /// - Returns: The key; equal keys share a template.
        /// - Throws: ``PostgresTestServerError/Code-swift.struct/invalidConfiguration`` when a folder of
        ///   ``directory(_:)`` is missing, unreadable or holds no `.sql` file.
        public func key() throws -> String {
            var hash = SHA256()
            hash.updateField("reservoir-test-template-1")
            for step in steps {
                switch step {
                case .sql(let scripts):
                    hash.updateField("sql")
                    hash.updateField(String(scripts.count))
                    for script in scripts { hash.updateField(script) }
                case .directory(let path):
                    let files = try Self.sqlFiles(in: path)
                    hash.updateField("directory")
                    hash.updateField(String(files.count))
                    for file in files {
                        hash.updateField((file as NSString).lastPathComponent)
                        guard let contents = FileManager.default.contents(atPath: file) else {
                            throw PostgresTestServerError(
                                .invalidConfiguration,
                                message: "The migration file \(file) could not be read."
                            )
                        }
                        hash.updateField(String(decoding: contents, as: UTF8.self))
                    }
                case .closure(let version, _):
                    hash.updateField("closure")
                    hash.updateField(version)
                }
            }
            return hash.hexDigest()
        }

        /// The `.sql` files directly in `path`, sorted by name, as absolute paths.
        static func sqlFiles(in path: String) throws -> [String] {
            let absolute =
                path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw PostgresTestServerError(
                    .invalidConfiguration,
                    message: "The migrations folder \(absolute) does not exist or is not a folder."
                )
            }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: absolute)
            } catch {
                throw PostgresTestServerError(
                    .invalidConfiguration,
                    message: "The migrations folder \(absolute) could not be listed.",
                    underlying: error
                )
            }
            let files = names.filter { $0.hasSuffix(".sql") }.sorted().map { absolute + "/" + $0 }.filter { file in
                var isFolder: ObjCBool = false
                return FileManager.default.fileExists(atPath: file, isDirectory: &isFolder) && !isFolder.boolValue
            }
            guard !files.isEmpty else {
                throw PostgresTestServerError(
                    .invalidConfiguration,
                    message: "The migrations folder \(absolute) holds no .sql file."
                )
            }
            return files
        }
    }
}
