import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Everything fixed about one throwaway cluster: its folder, programs, user and how to launch them.
struct Cluster: Sendable {
    /// How the server programs are launched when this process runs as root.
    enum Launcher: Sendable, Hashable {
        /// Run directly: this process is not root.
        case direct
        /// `setpriv --reuid … --regid … --init-groups --`: execs, so the child is the program itself.
        case setpriv(path: String, uid: uid_t, gid: gid_t)
        /// `runuser -u … --`: forks, so the child is `runuser` and the postmaster its child.
        case runuser(path: String, user: String)

        func command(_ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
            switch self {
            case .direct:
                return (executable, arguments)
            case .setpriv(let path, let uid, let gid):
                return (path, ["--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "--", executable] + arguments)
            case .runuser(let path, let user):
                return (path, ["-u", user, "--", executable] + arguments)
            }
        }

        /// The user the programs run as when it differs from ours.
        var owner: (uid: uid_t, gid: gid_t)? {
            switch self {
            case .direct: nil
            case .setpriv(_, let uid, let gid): (uid, gid)
            case .runuser(_, let user): System.user(named: user)
            }
        }

        /// Whether the spawned child is the program itself (so its pid is the postmaster's).
        var execsDirectly: Bool {
            switch self {
            case .direct, .setpriv: true
            case .runuser: false
            }
        }
    }

    let configuration: PostgresTestServer.Configuration
    /// The superuser's password over TCP: ``PostgresTestServer/Configuration/password``, or a random one.
    let password: String
    let binaries: PostgresBinaries
    let launcher: Launcher
    /// The private folder (canonical path): socket, log, and `data/`.
    let directory: String
    /// The environment the server programs run with: ours without `PG*` variables, with `LC_ALL=C`.
    let serverEnvironment: [String: String]

    var dataDirectory: String { directory + "/data" }
    var logFile: String { directory + "/server.log" }
    var pidFile: String { dataDirectory + "/postmaster.pid" }
    /// A libpq password file with the superuser's TCP password, for the client tools (`PGPASSFILE`).
    var passwordFile: String { directory + "/client.pgpass" }

    /// 32 hexadecimal digits (128 bits) from the system's secure generator.
    static func generatePassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<32).map { _ in digits[Int(generator.next() % 16)] })
    }

    /// Environment without libpq's and the server's `PG*` variables, so the caller's settings never leak in.
    static func cleanEnvironment(_ environment: [String: String]) -> [String: String] {
        var clean = environment.filter { !$0.key.hasPrefix("PG") }
        clean["LC_ALL"] = "C"
        return clean
    }

    /// Chooses how to launch the server programs.
    static func launcher(for configuration: PostgresTestServer.Configuration, searchPath: [String]) throws -> Launcher {
        guard System.isRoot else { return .direct }
        guard let user = System.user(named: configuration.serverUser), user.uid != 0 else {
            throw PostgresTestServerError(
                .serverUserNotFound,
                message:
                    "This process runs as root, and PostgreSQL refuses to; the server's user "
                    + "`\(configuration.serverUser)` does not exist (or is root). Install the `postgresql` package, "
                    + "which creates `postgres`, or set `serverUser` to an unprivileged user."
            )
        }
        let systemFolders = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] + searchPath
        if let setpriv = BinaryLocator.firstExecutable(named: "setpriv", in: systemFolders) {
            return .setpriv(path: setpriv, uid: user.uid, gid: user.gid)
        }
        if let runuser = BinaryLocator.firstExecutable(named: "runuser", in: systemFolders) {
            return .runuser(path: runuser, user: configuration.serverUser)
        }
        throw PostgresTestServerError(
            .serverUserNotFound,
            message:
                "This process runs as root and neither `setpriv` nor `runuser` (util-linux) was found to run the "
                + "server as `\(configuration.serverUser)`. Install util-linux or run the tests as an unprivileged "
                + "user."
        )
    }

    // MARK: - initdb

    /// Fills `data/`: a copy of this process's template cluster (see ``TemplateClusters``), or a fresh `initdb` when
    /// ``PostgresTestServer/Configuration/usesTemplateCluster`` is off; then writes `pg_hba.conf`.
    func initialize() async throws {
        if configuration.usesTemplateCluster {
            let template = try await TemplateClusters.shared.template(for: self)
            try await copyCluster(from: template.dataDirectory)
        } else {
            try await Self.runInitdb(
                binaries: binaries,
                launcher: launcher,
                environment: serverEnvironment,
                user: configuration.user,
                dataDirectory: dataDirectory,
                logPath: directory + "/initdb.log"
            )
        }
        try writeServerFile(dataDirectory + "/pg_hba.conf", contents: hostBasedAuthentication(), mode: 0o600)
        if let tls = configuration.tls {
            try installTLSFiles(tls)
        }
        try writePasswordFile()
    }

    /// Copies the certificate and key into the data folder, owned by the server's user with mode 0600 (PostgreSQL
    /// refuses a key that others can read).
    private func installTLSFiles(_ tls: PostgresTestServer.TLS) throws {
        for (source, name) in [(tls.certificateFile, "server.crt"), (tls.keyFile, "server.key")] {
            guard let contents = FileManager.default.contents(atPath: source) else {
                throw PostgresTestServerError(.fileSystem, message: "Could not read the TLS file \(source).")
            }
            try writeServerFile(dataDirectory + "/" + name, contents: contents, mode: 0o600)
        }
    }

    /// Writes the client tools' password file (`127.0.0.1:<any port>:*:<user>:<password>`), mode 0600, owned by
    /// this process's user, in the private folder.
    private func writePasswordFile() throws {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
        }
        let lines = ["127.0.0.1", "localhost"].map { host in
            [host, "*", "*", escaped(configuration.user), escaped(password)].joined(separator: ":")
        }
        let path = passwordFile
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw PostgresTestServerError(.fileSystem, message: "Could not write \(path): \(System.errorText()).")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
        } catch {
            throw PostgresTestServerError(.fileSystem, message: "Could not write \(path).", underlying: error)
        }
    }

    /// Runs `initdb` (UTF-8, C locale, trust, no fsync) as the server's user.
    static func runInitdb(
        binaries: PostgresBinaries,
        launcher: Launcher,
        environment: [String: String],
        user: String,
        dataDirectory: String,
        logPath: String
    ) async throws {
        let arguments = [
            "-D", dataDirectory,
            "-U", user,
            "-E", "UTF8",
            "--locale=C",
            "-A", "trust",
            "--no-sync",
        ]
        try await runLogged(
            launcher.command(binaries.initdb, arguments),
            environment: environment,
            workingDirectory: (dataDirectory as NSString).deletingLastPathComponent,
            logPath: logPath,
            cannotRun: "Could not run \(binaries.initdb).",
            failed: { "initdb failed (\($0)) in \(dataDirectory)." }
        )
    }

    /// Fills `data/` with a base backup of the running cluster `primary` (`pg_basebackup -R`, streaming its WAL, as
    /// the server's user over its private Unix socket), so that this cluster starts as its streaming standby; then
    /// writes the client tools' password file. `pg_hba.conf`, the certificate and the roles come with the backup.
    func initializeStandby(of primary: Cluster, primaryPort: Int) async throws {
        guard let basebackup = binaries.tool(named: "pg_basebackup") else {
            throw PostgresTestServerError(
                .toolNotFound,
                message: "pg_basebackup was not found in \(binaries.toolDirectories.joined(separator: ":")).")
        }
        let arguments = [
            "-D", dataDirectory,
            "-h", primary.directory,
            "-p", String(primaryPort),
            "-U", configuration.user,
            "-X", "stream",
            "-R",
            "--checkpoint=fast",
            "--no-sync",
        ]
        try await Self.runLogged(
            launcher.command(basebackup, arguments),
            environment: serverEnvironment,
            workingDirectory: directory,
            logPath: directory + "/initdb.log",
            cannotRun: "Could not run \(basebackup).",
            failed: { "pg_basebackup from \(primary.directory) failed (\($0))." }
        )
        try writePasswordFile()
    }

    /// Copies a stopped cluster with `cp -a`, as the server's user, so ownership and modes stay right.
    private func copyCluster(from source: String) async throws {
        guard let copy = BinaryLocator.firstExecutable(named: "cp", in: ["/bin", "/usr/bin"]) else {
            throw PostgresTestServerError(.initializationFailed, message: "`cp` was not found in /bin or /usr/bin.")
        }
        try await Self.runLogged(
            launcher.command(copy, ["-a", source, dataDirectory]),
            environment: serverEnvironment,
            workingDirectory: directory,
            logPath: directory + "/initdb.log",
            cannotRun: "Could not run \(copy).",
            failed: { "Copying the template cluster \(source) failed (\($0))." }
        )
    }

    /// Makes a private folder (mode 0700, owned by the server's user) under the configured or default temporary
    /// folder, named `<prefix>XXXXXX`.
    static func makePrivateDirectory(
        configuration: PostgresTestServer.Configuration,
        launcher: Launcher,
        prefix: String
    ) throws -> String {
        let directory = try System.makeTemporaryDirectory(
            template: parentDirectory(configuration: configuration) + "/" + prefix + "XXXXXX"
        )
        do {
            try System.changeMode(directory, 0o700)
            if let owner = launcher.owner {
                try System.changeOwner(directory, uid: owner.uid, gid: owner.gid)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        return directory
    }

    /// ``makePrivateDirectory(configuration:launcher:prefix:)`` with a ``Watchdog`` on it, which stops a server left
    /// running there and deletes the folder if this process dies; the folder is removed again when the watchdog cannot
    /// start.
    static func makeWatchedDirectory(
        configuration: PostgresTestServer.Configuration,
        launcher: Launcher,
        prefix: String
    ) async throws -> (directory: String, watchdog: Watchdog) {
        let directory = try makePrivateDirectory(configuration: configuration, launcher: launcher, prefix: prefix)
        do {
            return (directory, try await Watchdog.start(directory: directory))
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// The shared-memory file system that servers go to when it is large enough.
    static let memoryFolder = "/dev/shm"
    /// 2 GiB: room for dozens of servers; container defaults (64 MiB) fall back to `/tmp`.
    static let minimumMemoryFolderBytes: UInt64 = 2 << 30

    /// The folder private folders are made in: the configured one; else `TMPDIR` when this process is not root and
    /// sets it; else `/dev/shm` when it has at least 2 GiB free; else `/tmp`.
    static func parentDirectory(configuration: PostgresTestServer.Configuration) throws -> String {
        // The socket path `<folder>/.s.PGSQL.<port>` must fit in sun_path (108 bytes) with a 25-byte folder name.
        let maximumParentLength = 70
        var parent: String
        if let configured = configuration.temporaryDirectory {
            parent = configured
            guard parent.utf8.count <= maximumParentLength else {
                throw PostgresTestServerError(
                    .invalidConfiguration,
                    message:
                        "Configuration field `temporaryDirectory` is longer than \(maximumParentLength) bytes; the "
                        + "Unix socket's path would not fit.",
                    field: "temporaryDirectory"
                )
            }
        } else if !System.isRoot, let chosen = ProcessInfo.processInfo.environment["TMPDIR"], !chosen.isEmpty,
            chosen.utf8.count <= maximumParentLength
        {
            parent = chosen
        } else if System.availableBytes(atPath: memoryFolder) ?? 0 >= minimumMemoryFolderBytes {
            // A file system in memory: creating, copying and dropping databases there takes about half the time it
            // takes on a disk, even with fsync off (measured in docs/testing.md, "Speed").
            parent = memoryFolder
        } else {
            parent = "/tmp"
        }
        while parent.count > 1 && parent.hasSuffix("/") { parent.removeLast() }
        return parent
    }

    /// `pg_hba.conf`: trust on the Unix socket only, whose folder no one else can enter (mode 0700); over TCP,
    /// `scram-sha-256` for every role, so another local user cannot connect without a password. Nothing but
    /// 127.0.0.1. With ``PostgresTestServer/TLS/isRequired``, TCP connections without TLS are refused.
    func hostBasedAuthentication() -> String {
        let tcp = configuration.tls?.isRequired == true ? "hostssl" : "host"
        return [
            "# Written by PostgresTestServer: trust only on the private Unix socket, scram-sha-256 over TCP.",
            "local   all   all   trust",
            // Streaming replication for standbys made by `startStandby()`, on the same private socket.
            "local   replication   all   trust",
            "\(tcp)    all   all   127.0.0.1/32   scram-sha-256",
        ].joined(separator: "\n") + "\n"
    }

    /// Writes a file the server's user must own.
    private func writeServerFile(_ path: String, contents: String, mode: mode_t) throws {
        try writeServerFile(path, contents: Data(contents.utf8), mode: mode)
    }

    /// Writes a file the server's user must own.
    private func writeServerFile(_ path: String, contents: Data, mode: mode_t) throws {
        guard FileManager.default.createFile(atPath: path, contents: contents) else {
            throw PostgresTestServerError(.fileSystem, message: "Could not write \(path).")
        }
        try System.changeMode(path, mode)
        if let owner = launcher.owner {
            try System.changeOwner(path, uid: owner.uid, gid: owner.gid)
        }
    }

    // MARK: - The postmaster

    /// Why a start failed, so the caller can retry a port collision with a new port.
    struct StartFailure: Error {
        var error: PostgresTestServerError
        var portInUse: Bool
    }

    /// Starts the postmaster on `port` and waits until it accepts connections.
    ///
    /// Readiness comes from `postmaster.pid`: its eighth line reads `ready` once the server accepts connections
    /// (PostgreSQL 10 and later); this is what `pg_ctl -w` waits for, without needing libpq.
    ///
    /// - Throws: ``StartFailure`` (with the log's tail) when the postmaster exits or does not become ready in time;
    ///   `CancellationError` when the task is cancelled (the postmaster is stopped first).
    func startPostmaster(port: Int) async throws -> ChildProcess {
        try removeStalePidFile()
        let log = try System.openForAppending(logFile)
        defer { try? log.close() }
        let logOffset = (try? FileManager.default.attributesOfItem(atPath: logFile)[.size] as? Int) ?? 0

        var arguments = ["-D", dataDirectory]
        for setting in configuration.effectiveSettings(port: port, socketDirectory: directory) {
            arguments += ["-c", "\(setting.name)=\(setting.value)"]
        }
        let command = launcher.command(binaries.postgres, arguments)
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: command.executable,
                arguments: command.arguments,
                environment: serverEnvironment,
                workingDirectory: directory,
                standardOutput: log,
                standardError: log
            )
        } catch {
            throw StartFailure(
                error: PostgresTestServerError(
                    .startFailed, message: "Could not run \(binaries.postgres).", underlying: error),
                portInUse: false
            )
        }

        let clock = ContinuousClock()
        let deadline = clock.now + configuration.startupTimeout
        var pause = Duration.milliseconds(2)
        while true {
            if let termination = child.termination {
                let logText = Self.text(ofFile: logFile, from: logOffset)
                let portInUse =
                    logText.contains("could not create any TCP/IP sockets")
                    || logText.contains("Address already in use")
                throw StartFailure(
                    error: PostgresTestServerError(
                        .startFailed,
                        message: "The PostgreSQL server exited during start-up (\(termination)) on port \(port).",
                        logTail: Self.lastLines(of: logText, count: 30)
                    ),
                    portInUse: portInUse
                )
            }
            if isReady(child: child) {
                return child
            }
            if clock.now >= deadline || Task.isCancelled {
                await stopPostmaster(child, signal: SIGQUIT, timeout: .seconds(10))
                if Task.isCancelled {
                    throw CancellationError()
                }
                throw StartFailure(
                    error: PostgresTestServerError(
                        .startTimedOut,
                        message:
                            "The PostgreSQL server did not accept connections within \(configuration.startupTimeout).",
                        logTail: Self.lastLines(of: Self.text(ofFile: logFile, from: logOffset), count: 30)
                    ),
                    portInUse: false
                )
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(50))
        }
    }

    /// Whether `postmaster.pid` says our postmaster accepts connections.
    private func isReady(child: ChildProcess) -> Bool {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8) else { return false }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // `ready` for a primary; `standby` for a hot standby that accepts read-only connections.
        let status = lines.count >= 8 ? lines[7].trimmingCharacters(in: .whitespaces) : ""
        guard status == "ready" || status == "standby" else { return false }
        if launcher.execsDirectly {
            return Int32(lines[0].trimmingCharacters(in: .whitespaces)) == child.pid
        }
        return true
    }

    /// The postmaster's pid from `postmaster.pid`, only when that process really serves our data folder.
    func verifiedPostmasterPID() -> Int32? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let first = text.split(separator: "\n").first,
            let pid = Int32(first.trimmingCharacters(in: .whitespaces)),
            System.processExists(pid),
            System.workingDirectory(of: pid) == dataDirectory
        else { return nil }
        return pid
    }

    /// Removes a `postmaster.pid` left by a killed server; refuses when a live postmaster serves the folder.
    private func removeStalePidFile() throws {
        guard FileManager.default.fileExists(atPath: pidFile) else { return }
        if let pid = verifiedPostmasterPID() {
            throw StartFailure(
                error: PostgresTestServerError(
                    .invalidState,
                    message: "A postmaster (pid \(pid)) already runs in \(dataDirectory)."
                ),
                portInUse: false
            )
        }
        try? FileManager.default.removeItem(atPath: pidFile)
    }

    /// Signals the postmaster and waits up to `timeout` for it to exit.
    ///
    /// - Returns: Whether it exited in time.
    @discardableResult
    func stopPostmaster(_ child: ChildProcess, signal: Int32, timeout: Duration) async -> Bool {
        send(signal: signal, to: child)
        return await child.waitForExit(timeout: timeout) != nil
    }

    /// Sends a signal to the postmaster: the child itself, and, when launched through `runuser`, the process named
    /// in `postmaster.pid`.
    func send(signal: Int32, to child: ChildProcess) {
        if !launcher.execsDirectly, let pid = verifiedPostmasterPID() {
            System.send(signal: signal, to: pid)
        }
        child.send(signal: signal)
    }

    // MARK: - Logs

    static func text(ofFile path: String, from offset: Int = 0) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: UInt64(max(0, offset)))
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs a set-up tool to completion with its output appended to `logPath`; a failure to start or a non-zero exit
    /// is an `.initializationFailed` error, the latter with the log's tail.
    static func runLogged(
        _ command: (executable: String, arguments: [String]),
        environment: [String: String],
        workingDirectory: String,
        logPath: String,
        cannotRun: String,
        failed: (ProcessTermination) -> String
    ) async throws {
        let log = try System.openForAppending(logPath)
        defer { try? log.close() }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: command.executable,
                arguments: command.arguments,
                environment: environment,
                workingDirectory: workingDirectory,
                standardOutput: log,
                standardError: log
            )
        } catch {
            throw PostgresTestServerError(.initializationFailed, message: cannotRun, underlying: error)
        }
        let termination = await child.waitForExit()
        guard termination.succeeded else {
            throw PostgresTestServerError(
                .initializationFailed,
                message: failed(termination),
                logTail: tail(ofFile: logPath, lines: 30)
            )
        }
    }

    static func tail(ofFile path: String, lines: Int) -> String {
        lastLines(of: text(ofFile: path), count: lines)
    }

    static func lastLines(of text: String, count: Int) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let trimmed = lines.last == "" ? lines.dropLast() : lines[...]
        return trimmed.suffix(count).joined(separator: "\n")
    }
}
