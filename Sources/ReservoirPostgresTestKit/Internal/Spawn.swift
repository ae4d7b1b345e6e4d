import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Starts programs with `posix_spawn`: exactly the given standard descriptors, nothing else of this process, no
/// signal blocked and every signal at its default.
///
/// Why not Foundation's `Process` (on Linux): it learns that a child exited when a socket it hands the child reaches
/// end-of-file, that is when the last process holding the socket's other end exits. That end is not close-on-exec;
/// it is open in this process from just before one spawn until just after it, and another child spawned at that
/// moment (say a PostgreSQL server started by a parallel test) inherits it, because `Process` closes in its children
/// only the descriptors it saw in `/proc/self/fd` a moment before spawning. The first child's exit then goes unseen
/// until the second one exits: a test suite that ran `openssl` while another test started a server hung for 30
/// minutes in `waitUntilExit`. A child that leaves a background process behind (`sh -c 'daemon &'`) has the same
/// effect every time. ``ChildProcess`` instead waits for the process id itself, and every spawn here closes all
/// descriptors from 3 on in the child, so no child ever holds another's pipe or socket.
enum Spawn {
    /// Why a program could not be started.
    struct Failure: Error, CustomStringConvertible {
        var executable: String
        var step: String
        var code: Int32

        var description: String {
            "could not start \(executable): \(step) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }

    /// Starts `executable` and returns its process id; the caller must reap it (``ChildProcess`` does).
    ///
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments, passed as they are (no shell); the program's path is `argv[0]`.
    ///   - environment: The complete environment of the child.
    ///   - workingDirectory: The child's working directory; `nil` keeps this process's.
    ///   - standardInput: The descriptor that becomes the child's stdin; `nil` means `/dev/null`.
    ///   - standardOutput: The descriptor that becomes the child's stdout; `nil` means `/dev/null`.
    ///   - standardError: The descriptor that becomes the child's stderr; `nil` means `/dev/null`.
    /// - Throws: ``Failure`` when the program cannot be started (missing, not executable, a working directory that
    ///   does not exist: `posix_spawn` reports the failed `exec` itself).
    static func start(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String?,
        standardInput: Int32? = nil,
        standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws(Failure) -> pid_t {
        func check(_ result: Int32, _ step: String) throws(Failure) {
            if result != 0 { throw Failure(executable: executable, step: step, code: result) }
        }
        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }
        // A child inherits the spawning thread's signal mask, and Swift's cooperative threads (dispatch's workers)
        // block SIGTERM, SIGINT and most others: a `psql` or a shell started from one would ignore SIGTERM.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "posix_spawnattr_setsigmask")
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        try check(posix_spawnattr_setsigdefault(&attributes, &allSignals), "posix_spawnattr_setsigdefault")
        try check(
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)),
            "posix_spawnattr_setflags"
        )

        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (source, target) in [(standardInput, Int32(0)), (standardOutput, 1), (standardError, 2)] {
            if let source {
                // `dup2` onto the target clears close-on-exec there (glibc does so even when source == target).
                try check(
                    posix_spawn_file_actions_adddup2(&actions, source, target), "posix_spawn_file_actions_adddup2")
            } else {
                let mode = target == 0 ? O_RDONLY : O_WRONLY
                try check(
                    posix_spawn_file_actions_addopen(&actions, target, "/dev/null", mode, 0),
                    "posix_spawn_file_actions_addopen"
                )
            }
        }
        try check(closeFromThree(&actions), "posix_spawn_file_actions_addclosefrom_np")
        if let workingDirectory {
            guard let changeDirectory = Extensions.changeDirectory else {
                throw Failure(executable: executable, step: "posix_spawn_file_actions_addchdir_np", code: ENOSYS)
            }
            try check(
                workingDirectory.withCString { changeDirectory(&actions, $0) }, "posix_spawn_file_actions_addchdir_np")
        }

        let argumentVector: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentVector: [UnsafeMutablePointer<CChar>?] =
            environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argumentVector { free(pointer) }
            for pointer in environmentVector { free(pointer) }
        }
        var pid: pid_t = 0
        try check(
            posix_spawn(&pid, executable, &actions, &attributes, argumentVector, environmentVector),
            "posix_spawn"
        )
        return pid
    }

    /// Waits for child `pid` to end and reaps it (blocking: call it where blocking is fine, or once the child is a
    /// zombie). Returns how it ended, or an exit status of -1 when it cannot be reaped (not our child, or already
    /// reaped).
    static func reap(_ pid: pid_t) -> ProcessTermination {
        var status: Int32 = 0
        var reaped: pid_t
        repeat {
            reaped = waitpid(pid, &status, 0)
        } while reaped < 0 && errno == EINTR
        return reaped == pid
            ? ProcessTermination(waitStatus: status) : ProcessTermination(status: -1, killedBySignal: false)
    }

    /// Adds "close every descriptor from 3 on" to `actions`: `posix_spawn_file_actions_addclosefrom_np` where the C
    /// library has it (glibc 2.34 and later), else one close per descriptor open now. The fallback misses a
    /// descriptor opened between this listing and the spawn; descriptors this kit opens are close-on-exec anyway.
    private static func closeFromThree(_ actions: inout posix_spawn_file_actions_t) -> Int32 {
        if let closeFrom = Extensions.closeFrom {
            return closeFrom(&actions, 3)
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for descriptor in open.compactMap({ Int32($0) }) where descriptor > 2 {
            // A descriptor already closed again (the listing's own) fails the close in the child, which glibc
            // ignores for EBADF; so no check here.
            _ = posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        return 0
    }

    /// The C library's non-portable spawn actions, looked up at run time: Swift's Glibc module does not declare
    /// them.
    private enum Extensions {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        typealias ChangeDirectory =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

        static let closeFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
            unsafeBitCast($0, to: CloseFrom.self)
        }
        static let changeDirectory: ChangeDirectory? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
            unsafeBitCast($0, to: ChangeDirectory.self)
        }
    }
}
