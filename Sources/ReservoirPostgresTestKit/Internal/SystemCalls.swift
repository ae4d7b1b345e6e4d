import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Thin wrappers over the few system calls Foundation does not offer.
enum System {
    /// Whether this process runs as root.
    static var isRoot: Bool { geteuid() == 0 }

    /// The uid and gid of a user, or `nil` when no such user exists.
    static func user(named name: String) -> (uid: uid_t, gid: gid_t)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }

    /// Makes a fresh private folder from a `mkdtemp` template (ending in `XXXXXX`) and returns its real path.
    static func makeTemporaryDirectory(template: String) throws -> String {
        var bytes = Array(template.utf8CString)
        let made = bytes.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!)
        }
        guard made != nil else {
            throw PostgresTestServerError(
                .fileSystem,
                message: "Could not create a temporary folder from \(template): \(errorText())."
            )
        }
        let path = String(decoding: bytes.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return realPath(path) ?? path
    }

    /// The canonical path (symbolic links resolved), or `nil` when it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func changeOwner(_ path: String, uid: uid_t, gid: gid_t) throws {
        guard chown(path, uid, gid) == 0 else {
            throw PostgresTestServerError(
                .fileSystem, message: "Could not hand \(path) to the server's user: \(errorText()).")
        }
    }

    static func changeMode(_ path: String, _ mode: mode_t) throws {
        guard chmod(path, mode) == 0 else {
            throw PostgresTestServerError(
                .fileSystem, message: "Could not set the permissions of \(path): \(errorText()).")
        }
    }

    /// Opens a file for appending (created when missing), with close-on-exec set.
    static func openForAppending(_ path: String) throws -> FileHandle {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw PostgresTestServerError(.fileSystem, message: "Could not open \(path): \(errorText()).")
        }
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    /// A pipe whose both ends are close-on-exec; the end handed to a child is dup'ed onto its stdin, which clears
    /// the flag there.
    static func makePipe() throws -> (read: FileHandle, write: FileHandle) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            throw PostgresTestServerError(.fileSystem, message: "Could not create a pipe: \(errorText()).")
        }
        // Set at once. The kit's own spawns close every other descriptor in their children anyway; this covers any
        // other spawner in the process (Glibc's pipe2 is not visible from Swift).
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        return (
            FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true),
            FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true)
        )
    }

    /// The bytes an unprivileged user may still write on the file system holding `path` (a folder that this
    /// process can write to), or `nil` when it is not such a folder.
    static func availableBytes(atPath path: String) -> UInt64? {
        guard access(path, W_OK | X_OK) == 0 else { return nil }
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// Whether a process with this id exists (and may be signalled by us).
    static func processExists(_ pid: Int32) -> Bool {
        pid > 0 && kill(pid, 0) == 0
    }

    /// The working directory of a process, or `nil` when it cannot be read.
    static func workingDirectory(of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
    }

    /// Sends a signal; returns whether it was delivered.
    @discardableResult
    static func send(signal: Int32, to pid: Int32) -> Bool {
        pid > 0 && kill(pid, signal) == 0
    }

    /// A free TCP port on 127.0.0.1, chosen by the kernel (bind to port 0), released before returning.
    ///
    /// Another process can take it before the server binds it; the caller retries with a new port when that
    /// happens.
    static func freeLoopbackPort() throws -> Int {
        #if canImport(Glibc) || canImport(Musl)
            let socketType = Int32(SOCK_STREAM.rawValue)
        #else
            let socketType = SOCK_STREAM
        #endif
        let descriptor = socket(AF_INET, socketType, 0)
        guard descriptor >= 0 else {
            throw PostgresTestServerError(
                .fileSystem, message: "Could not create a socket to find a free port: \(errorText()).")
        }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            throw PostgresTestServerError(
                .fileSystem, message: "Could not bind 127.0.0.1 to find a free port: \(errorText()).")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(descriptor, $0, &length)
            }
        }
        guard named == 0 else {
            throw PostgresTestServerError(.fileSystem, message: "Could not read the free port: \(errorText()).")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func errorText() -> String {
        String(cString: strerror(errno))
    }
}
