import Foundation
import Glibc
import ReservoirPostgres
import ReservoirPostgresTestKit
import Synchronization
import Testing

/// Debian's `pgbouncer`, started on loopback in front of a throwaway server for one test.
///
/// Its configuration and log live in a folder of their own under `/tmp`. As root it runs as the `postgres` user
/// (through `setpriv`, as ``PostgresTestServer`` runs the server), since the server's socket folder belongs to it.
/// A small `/bin/sh` guard is the direct child: it starts `pgbouncer`, then reads its stdin, a pipe whose write end
/// only this process holds; when the pipe closes (``stop()``, or this process exiting however it exits) it sends
/// SIGTERM (PgBouncer's immediate shutdown) and waits for it; when the pipe closed without a word from ``stop()``, it
/// also deletes the folder. So PgBouncer never outlives the test.
final class PgBouncerProcess: Sendable {
    struct Settings: Sendable {
        /// `pool_mode`: `transaction` or `session`.
        var poolMode = "transaction"
        /// `default_pool_size`: server connections per database and user.
        var defaultPoolSize = 16
        /// `max_client_conn`.
        var maximumClientConnections = 400
    }

    static let binary = "/usr/sbin/pgbouncer"

    let port: Int
    let directory: String
    private let guardProcess: Mutex<GuardProcess?>

    private struct GuardProcess {
        /// The write end of the guard's stdin.
        let input: Int32
        let exited: AsyncStream<Void>
    }

    /// The libpq connection string of a client of this PgBouncer.
    var connectionString: String { "host=127.0.0.1 port=\(port) dbname=postgres user=postgres" }

    /// PgBouncer's log, for failure messages.
    var log: String { (try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? "" }

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
        self.guardProcess = Mutex(nil)
    }

    /// Starts PgBouncer in front of `server`, runs `body`, and stops PgBouncer and deletes its folder, also when
    /// `body` throws.
    static func with<Result>(
        server: PostgresTestServer,
        settings: Settings = Settings(),
        _ body: (PgBouncerProcess) async throws -> Result
    ) async throws -> Result {
        let bouncer = try prepare(server: server, settings: settings)
        do {
            try await bouncer.start()
            let result = try await body(bouncer)
            await bouncer.stop()
            try? FileManager.default.removeItem(atPath: bouncer.directory)
            return result
        } catch {
            await bouncer.stop()
            print("pgbouncer log:\n\(bouncer.log.suffix(4000))")
            try? FileManager.default.removeItem(atPath: bouncer.directory)
            throw error
        }
    }

    /// Writes the configuration into a new folder, on a free port.
    private static func prepare(server: PostgresTestServer, settings: Settings) throws -> PgBouncerProcess {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestFailure("pgbouncer is not installed at \(binary): apt-get install -y pgbouncer")
        }
        var template = Array("/tmp/reservoir-pgbouncer-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: errno \(errno)") }
        let directory = String(cString: made)
        let port = try freePort()
        let details = server.connection
        let configuration = """
            [databases]
            postgres = host=\(details.socketDirectory) port=\(details.port) dbname=postgres user=postgres

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(directory)/userlist.txt
            pool_mode = \(settings.poolMode)
            default_pool_size = \(settings.defaultPoolSize)
            max_client_conn = \(settings.maximumClientConnections)
            server_reset_query = DISCARD ALL
            ignore_startup_parameters = extra_float_digits
            logfile = \(directory)/pgbouncer.log
            pidfile = \(directory)/pgbouncer.pid
            log_connections = 1
            log_disconnections = 1

            """
        try configuration.write(toFile: directory + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        try "\"postgres\" \"\"\n".write(toFile: directory + "/userlist.txt", atomically: true, encoding: .utf8)
        if getuid() == 0, let user = getpwnam("postgres") {
            for path in [directory, directory + "/pgbouncer.ini", directory + "/userlist.txt"] {
                guard chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                    throw TestFailure("chown \(path) failed: errno \(errno)")
                }
            }
        }
        return PgBouncerProcess(port: port, directory: directory)
    }

    /// Starts PgBouncer (again, after ``stop()``) on the same port and waits until it accepts a client.
    func start() async throws {
        // The folder name comes from mkdtemp: letters, digits, '/', '-' only.
        let script = """
            dir='\(directory)'
            "$@" &
            pid=$!
            trap '' INT TERM HUP QUIT
            last=
            while read -r line; do last=$line; done
            kill -TERM "$pid" 2>/dev/null
            wait "$pid"
            [ "$last" = keep ] || rm -rf -- "$dir"
            """
        var command = [Self.binary, directory + "/pgbouncer.ini"]
        if getuid() == 0 {
            command = ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + command
        }
        // Both ends close-on-exec (at once; Glibc's pipe2 is not visible from Swift), so that no other child
        // (another test's guard) inherits the write end and keeps the guard waiting after this process is gone; the
        // read end becomes the guard's stdin through dup2.
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw TestFailure("pipe failed: errno \(errno)") }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        defer { close(ends[0]) }
        let arguments = ["/bin/sh", "-c", script, "reservoir-pgbouncer-guard"] + command
        let pid: pid_t
        do {
            pid = try Self.spawn(arguments, standardInput: ends[0])
        } catch {
            close(ends[1])
            throw error
        }
        let (exited, continuation) = AsyncStream<Void>.makeStream()
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            continuation.finish()
        }
        guardProcess.withLock { $0 = GuardProcess(input: ends[1], exited: exited) }
        try await waitUntilAccepting()
    }

    /// Stops PgBouncer (immediate shutdown: its clients' connections break) and waits until it has exited. The
    /// folder stays, for ``start()`` or for the caller to delete; a guard whose pipe closes without this (the test
    /// process died) deletes it.
    func stop() async {
        guard let running = guardProcess.withLock({ state in defer { state = nil }; return state }) else { return }
        _ = "keep\n".withCString { write(running.input, $0, 5) }
        close(running.input)
        for await _ in running.exited {}
    }

    /// Connects until PgBouncer answers (each attempt is a connect, refused at once until it listens), at most 10 s.
    private func waitUntilAccepting() async throws {
        var configuration = try PostgresConnection.Configuration(connectionString: connectionString)
        configuration.connectTimeout = .seconds(2)
        configuration.statementCacheCapacity = 0
        let deadline = ContinuousClock.now + .seconds(10)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration)
                await connection.close()
                return
            } catch {
                lastError = error
                // A poll interval while PgBouncer starts (not a synchronisation: the loop ends on its answer).
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        throw TestFailure("pgbouncer did not accept connections within 10 s: \(String(describing: lastError))\n\(log)")
    }

    /// Starts `arguments` with `standardInput` as its stdin, stdout and stderr to `/dev/null`, no other descriptor,
    /// no signal blocked and every signal at its default: Foundation's `Process` passes on the spawning thread's blocked signals, and a
    /// guard that cannot see SIGCHLD, or a PgBouncer that cannot see SIGTERM, never ends.
    private static func spawn(_ arguments: [String], standardInput: Int32) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Nothing else of this process reaches the guard: without this, a long-lived guard inherits whatever
        // descriptor another test opened without close-on-exec at that moment (a pipe's write end, say), and that
        // test's read never sees the end of its pipe while this guard lives.
        try closeDescriptorsFromThree(&actions)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        guard result == 0 else { throw TestFailure("posix_spawn \(arguments[0]) failed: \(result)") }
        return pid
    }

    /// Adds "close every descriptor from 3 on" to `actions`: glibc's `posix_spawn_file_actions_addclosefrom_np`
    /// (2.34 and later; Swift's Glibc module does not declare it, so it is looked up), else one close per descriptor
    /// open now.
    private static func closeDescriptorsFromThree(_ actions: inout posix_spawn_file_actions_t) throws {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            let result = closeFrom(&actions, 3)
            guard result == 0 else { throw TestFailure("posix_spawn_file_actions_addclosefrom_np failed: \(result)") }
            return
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for descriptor in open.compactMap({ Int32($0) }) where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
    }

    /// A port on 127.0.0.1 that was free a moment ago.
    private static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw TestFailure("bind failed: errno \(errno)") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A failure of the test's own set-up, with a message saying what to fix.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
