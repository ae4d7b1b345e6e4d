import Foundation
import Glibc

/// A loopback TCP proxy between a pool and its server that can misbehave on command: cut every connection (as a
/// network failure mid-query would), turn into a black hole (accept, never forward, never close), or refuse
/// connections (its port closed) and come back on the same port.
///
/// Test support: one thread accepts, one thread per connection pumps bytes both ways with `poll()`. Only loopback
/// addresses are used. `stop()` ends everything; the proxy's threads end within one poll interval.
final class FaultProxy: @unchecked Sendable {
    // Unchecked: every mutable property is protected by `lock`.
    enum Mode: Sendable {
        /// Bytes flow both ways.
        case forward
        /// Nothing flows in either direction, and nothing is closed: connections look alive and never answer.
        case blackHole
    }

    /// The port the proxy listens on (stable across `refuse()` and `resume()`).
    let port: Int
    private let targetPort: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var currentMode = Mode.forward
    private var connections: [Int32] = []
    private var stopped = false

    /// Starts a proxy to `127.0.0.1:targetPort`.
    init(targetPort: Int) throws {
        self.targetPort = targetPort
        let (listener, port) = try Self.listen(port: 0)
        self.port = port
        self.listener = listener
        startAccepting(listener)
    }

    deinit { stop() }

    var mode: Mode {
        get { lock.withLock { currentMode } }
        set { lock.withLock { currentMode = newValue } }
    }

    /// Cuts every open connection at once, in both directions.
    ///
    /// Under the lock: a pump removes its descriptors under it before closing them, so every number in the list is
    /// still ours here (outside it, a number closed meanwhile may already name another test's socket).
    func cutAll() {
        lock.withLock {
            for descriptor in connections { shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    /// Closes the listening port: new connections are refused until `resume()`. Open connections stay.
    func refuse() {
        let descriptor = lock.withLock { () -> Int32 in
            defer { listener = -1 }
            return listener
        }
        // Only shut down: the accept thread closes the descriptor when it ends. Closing it here would let the number
        // be reused (by another test's proxy, say) while that thread may still call accept() on it.
        if descriptor >= 0 { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// Listens again on the same port after `refuse()`.
    func resume() throws {
        let (descriptor, _) = try Self.listen(port: port)
        lock.withLock { listener = descriptor }
        startAccepting(descriptor)
    }

    /// Ends the proxy: the port is closed and every connection cut.
    func stop() {
        lock.withLock { stopped = true }
        refuse()
        cutAll()
    }

    // MARK: Sockets

    private static func listen(port: Int) throws -> (Int32, Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ProxyError("socket failed: errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0, Glibc.listen(descriptor, 64) == 0 else {
            close(descriptor)
            throw ProxyError("bind or listen on port \(port) failed: errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func connectToTarget(port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    private func startAccepting(_ listener: Int32) {
        let thread = Thread { [weak self] in
            defer { close(listener) }  // only here, once no accept() can use the number any more
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }  // the listener was shut down
                guard let self else {
                    close(client)
                    return
                }
                self.serve(client)
            }
        }
        thread.name = "fault-proxy-accept"
        thread.start()
    }

    private func serve(_ client: Int32) {
        guard let server = Self.connectToTarget(port: targetPort) else {
            close(client)
            return
        }
        let accepted = lock.withLock { () -> Bool in
            guard !stopped else { return false }
            connections += [client, server]
            return true
        }
        guard accepted else {
            close(client)
            close(server)
            return
        }
        let thread = Thread { [weak self] in self?.pump(client, server) }
        thread.name = "fault-proxy-pump"
        thread.start()
    }

    /// Moves bytes both ways until either side closes (or the proxy cuts them), honouring the black hole.
    private func pump(_ client: Int32, _ server: Int32) {
        defer {
            lock.withLock { connections.removeAll { $0 == client || $0 == server } }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
            close(client)
            close(server)
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if lock.withLock({ stopped }) { return }
            if mode == .blackHole {
                // Read nothing and send nothing; notice only a cut (a shutdown makes poll report the socket).
                var descriptors = [
                    pollfd(fd: client, events: 0, revents: 0), pollfd(fd: server, events: 0, revents: 0),
                ]
                _ = poll(&descriptors, 2, 50)
                if descriptors.contains(where: { $0.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 }) { return }
                continue
            }
            var descriptors = [
                pollfd(fd: client, events: Int16(POLLIN), revents: 0),
                pollfd(fd: server, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, 50)
            if ready < 0, errno != EINTR { return }
            if ready <= 0 { continue }
            for (from, to) in [(0, server), (1, client)] where descriptors[from].revents != 0 {
                let count = read(descriptors[from].fd, &buffer, buffer.count)
                if count <= 0 { return }
                var written = 0
                while written < count {
                    // send with MSG_NOSIGNAL: a write to a socket the proxy cut raises SIGPIPE, which kills the test process.
                    let result = buffer.withUnsafeBytes {
                        send(to, $0.baseAddress! + written, count - written, Int32(MSG_NOSIGNAL))
                    }
                    if result <= 0 { return }
                    written += result
                }
            }
        }
    }
}

struct ProxyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
