import Foundation
import Synchronization

/// A tiny shell process that cleans up a server's folder when this process goes away, however it goes away.
///
/// The watchdog reads its stdin, a pipe whose only write end this process holds (close-on-exec, so no other child
/// inherits it). The read returns end-of-file when that end closes: when ``release()`` closes it, or when the kernel
/// closes it because this process exited, crashed or was killed with SIGKILL. The watchdog then stops a postmaster
/// still running in the folder (immediate shutdown, verified through `/proc/<pid>/cwd` so a reused process id is
/// never hit), waits up to 10 seconds for it, kills it if needed, and deletes the folder — unless it was told to keep
/// the server (a `keep` line, written when a test database is kept for inspection). It ignores SIGINT, SIGTERM,
/// SIGHUP and SIGQUIT, so Ctrl-C on a test run does not kill it before it has cleaned up.
final class Watchdog: Sendable {
    private static let script = #"""
        trap '' INT TERM HUP QUIT
        keep=
        while read -r line; do [ "$line" = keep ] && keep=1; done
        [ -n "$keep" ] && exit 0
        dir="$1"
        pidfile="$dir/data/postmaster.pid"
        if [ -f "$pidfile" ]; then
            pid=$(head -n 1 "$pidfile" 2>/dev/null)
            case "$pid" in ''|*[!0-9]*) pid= ;; esac
            if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/data" ]; then
                kill -QUIT "$pid" 2>/dev/null
                i=0
                # A zombie (the parent is gone and init may not reap it) has no cwd any more: that counts as gone.
                while [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/data" ] && [ "$i" -lt 100 ]; do
                    sleep 0.1
                    i=$((i + 1))
                done
                [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/data" ] && kill -KILL "$pid" 2>/dev/null
            fi
        fi
        rm -rf -- "$dir"
        """#

    private let child: ChildProcess
    // The write end of the watchdog's stdin; `nil` once released. Protected by the mutex.
    private let writeEnd: Mutex<FileHandle?>

    /// Starts the watchdog for `directory` (an absolute, canonical path).
    ///
    /// - Throws: ``PostgresTestServerError/Code-swift.struct/fileSystem`` when the pipe or the shell cannot be made.
    static func start(directory: String) async throws -> Watchdog {
        let pipe = try System.makePipe()
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: "/bin/sh",
                arguments: ["-c", Self.script, "reservoir-postgres-watchdog", directory],
                environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C"],
                workingDirectory: "/",
                standardInput: pipe.read
            )
        } catch {
            throw PostgresTestServerError(
                .fileSystem,
                message: "Could not start the clean-up watchdog (/bin/sh).",
                underlying: error
            )
        }
        try? pipe.read.close()
        return Watchdog(child: child, writeEnd: pipe.write)
    }

    private init(child: ChildProcess, writeEnd: FileHandle) {
        self.child = child
        self.writeEnd = Mutex(writeEnd)
    }

    /// Tells the watchdog to leave the server running and its folder in place when the pipe closes (a `keep` line).
    /// ``PostgresTestServer/destroy()`` still cleans up itself.
    func keepServerAfterExit() {
        // A pipe whose reader is gone raises SIGPIPE on write, which would end this process: write only to a
        // watchdog that still runs (it reads until the pipe closes, so it does not exit in between by itself).
        guard child.isRunning else { return }
        writeEnd.withLock { handle in
            try? handle?.write(contentsOf: Data("keep\n".utf8))
        }
    }

    /// Tells the watchdog to clean up now (closes the pipe). Synchronous and idempotent, so `deinit` can call it.
    func release() {
        let handle = writeEnd.withLock { handle in
            defer { handle = nil }
            return handle
        }
        try? handle?.close()
    }

    /// Releases the watchdog and waits (bounded) until it has finished cleaning up.
    func releaseAndWait(timeout: Duration = .seconds(15)) async {
        release()
        _ = await child.waitForExit(timeout: timeout)
    }

    /// Waits (bounded) until the watchdog has exited, without releasing it.
    ///
    /// - Returns: Whether it exited within `timeout`.
    func waitUntilFinished(timeout: Duration) async -> Bool {
        await child.waitForExit(timeout: timeout) != nil
    }

    deinit {
        release()
    }
}
