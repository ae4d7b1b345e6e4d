import Foundation
import Glibc
import ReservoirPostgres
import Synchronization
import Testing

@testable import ReservoirPostgresTestKit

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
    private let guardProcess: Synchronization.Mutex<GuardProcess?>

    private struct GuardProcess {
        /// The write end of the guard's stdin.
        let input: Int32
        let child: ChildProcess
    }

    /// The libpq connection string of a client of this PgBouncer.
    var connectionString: String { "host=127.0.0.1 port=\(port) dbname=postgres user=postgres" }

    /// PgBouncer's log, for failure messages.
    var log: String { (try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? "" }

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
        self.guardProcess = Synchronization.Mutex(nil)
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
        // Through the test kit's spawn: the guard gets this stdin, stdout and stderr to /dev/null, no other
        // descriptor, and no signal blocked (a guard that cannot see SIGCHLD, or a PgBouncer that cannot see SIGTERM,
        // never ends).
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: "/bin/sh",
                arguments: ["-c", script, "reservoir-pgbouncer-guard"] + command,
                environment: ProcessInfo.processInfo.environment,
                workingDirectory: "/",
                standardInput: FileHandle(fileDescriptor: ends[0], closeOnDealloc: false)
            )
        } catch {
            close(ends[1])
            throw error
        }
        guardProcess.withLock { $0 = GuardProcess(input: ends[1], child: child) }
        try await waitUntilAccepting()
    }

    /// Stops PgBouncer (immediate shutdown: its clients' connections break) and waits until it has exited. The
    /// folder stays, for ``start()`` or for the caller to delete; a guard whose pipe closes without this (the test
    /// process died) deletes it.
    func stop() async {
        guard
            let running = guardProcess.withLock({ state in
                defer { state = nil }
                return state
            })
        else { return }
        _ = "keep\n".withCString { write(running.input, $0, 5) }
        close(running.input)
        _ = await running.child.waitForExit()
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
