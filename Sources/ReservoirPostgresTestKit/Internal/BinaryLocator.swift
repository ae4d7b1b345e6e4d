import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The PostgreSQL programs a test server uses, all from one installation.
struct PostgresBinaries: Sendable, Equatable {
    /// The folder holding `initdb` and `postgres`.
    var directory: String
    /// Where client tools (`psql`, `pgbench`, `pg_isready`, …) are looked for: the server's folder first, then the
    /// rest of the search path.
    var toolDirectories: [String]

    var initdb: String { directory + "/initdb" }
    var postgres: String { directory + "/postgres" }

    /// The path of a client tool, or `nil` when none of the folders holds it.
    func tool(named name: String) -> String? {
        for directory in toolDirectories {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }
}

/// Finds the server binaries: `PATH`, then `pg_config --bindir`, then Debian's `/usr/lib/postgresql/<newest>/bin`.
enum BinaryLocator {
    /// The folders searched by default, in order, without duplicates.
    static func defaultSearchPath(environment: [String: String]) -> [String] {
        var folders: [String] = []
        if let path = environment["PATH"] {
            folders += path.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        if let pgConfig = firstExecutable(named: "pg_config", in: folders), let bindir = bindir(from: pgConfig) {
            folders.append(bindir)
        }
        folders += debianServerFolders()
        var seen: Set<String> = []
        return folders.filter { seen.insert($0).inserted }
    }

    /// Locates the binaries.
    ///
    /// - Parameter searchPath: Folders to search in order, or `nil` for ``defaultSearchPath(environment:)``.
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/binariesNotFound`` naming the package to install.
    static func locate(searchPath: [String]?, environment: [String: String]) throws -> PostgresBinaries {
        let folders = searchPath ?? defaultSearchPath(environment: environment)
        let fileManager = FileManager.default
        for folder in folders
        where fileManager.isExecutableFile(atPath: folder + "/initdb")
            && fileManager.isExecutableFile(atPath: folder + "/postgres")
        {
            // Symbolic links (such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) resolve to the
            // real folder, so that client tools of the same version are found next to the server.
            let resolved = URL(fileURLWithPath: folder + "/initdb").resolvingSymlinksInPath()
                .deletingLastPathComponent().path
            var tools = [resolved, folder] + folders
            var seen: Set<String> = []
            tools = tools.filter { seen.insert($0).inserted }
            return PostgresBinaries(directory: resolved, toolDirectories: tools)
        }
        throw PostgresTestServerError(
            .binariesNotFound,
            message: "The PostgreSQL server programs (initdb, postgres) were not found in "
                + (folders.isEmpty ? "an empty search path" : folders.joined(separator: ":"))
                + ". Install the `postgresql` package (Debian/Ubuntu: `apt-get install postgresql`), "
                + "or put its bin folder on PATH."
        )
    }

    static func firstExecutable(named name: String, in folders: [String]) -> String? {
        folders.lazy.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `pg_config --bindir` for each `pg_config` asked once in this process: the answer does not change.
    private static let bindirs = Mutex<[String: String?]>([:])

    /// Runs `pg_config --bindir` synchronously (it prints one line and exits at once), once per path.
    ///
    /// The pipe is close-on-exec in this process (the spawn dup's it onto the child's stdout, which clears the flag
    /// there), so no other child started at the same moment holds its write end and keeps the read from ending.
    private static func bindir(from pgConfig: String) -> String? {
        if let known = bindirs.withLock({ $0[pgConfig] }) {
            return known
        }
        let folder = runBindir(pgConfig)
        bindirs.withLock { $0[pgConfig] = .some(folder) }
        return folder
    }

    private static func runBindir(_ pgConfig: String) -> String? {
        guard let output = try? System.makePipe() else { return nil }
        let pid: pid_t
        do {
            pid = try Spawn.start(
                executable: pgConfig,
                arguments: ["--bindir"],
                environment: ProcessInfo.processInfo.environment,
                workingDirectory: nil,
                standardOutput: output.write.fileDescriptor
            )
        } catch {
            return nil
        }
        try? output.write.close()
        let data = output.read.readDataToEndOfFile()
        // Reaps the child here (nothing else waits for it); it has closed its stdout, so it is exiting.
        guard Spawn.reap(pid).succeeded, let text = String(data: data, encoding: .utf8)
        else { return nil }
        let folder = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return folder.isEmpty ? nil : folder
    }

    /// `/usr/lib/postgresql/<version>/bin`, newest version first.
    private static func debianServerFolders() -> [String] {
        let root = "/usr/lib/postgresql"
        guard let versions = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return
            versions
            .compactMap { name -> (version: [Int], name: String)? in
                let parts = name.split(separator: ".").map { Int($0) }
                guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
                return (parts.compactMap { $0 }, name)
            }
            .sorted { $0.version.lexicographicallyPrecedes($1.version) }
            .reversed()
            .map { "\(root)/\($0.name)/bin" }
    }
}
