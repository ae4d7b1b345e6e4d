import DequeModule
import Reservoir
import Synchronization

/// A resource for tests: an id, unique per factory, in creation order starting at 1.
public struct MockResource: Sendable, Hashable, CustomStringConvertible {
    /// The resource's id.
    public var id: Int

    /// Creates a resource.
    public init(id: Int) {
        self.id = id
    }

    public var description: String { "MockResource(\(self.id))" }
}

/// A resource factory whose creations and closes the test completes, one by one (a rendezvous).
///
/// In `.manual` mode each `create()` suspends until the test takes it with ``nextCreation()`` and calls
/// ``PendingCreation/succeed()`` or ``PendingCreation/fail(_:)``; closes likewise with ``nextClose()``. In
/// `.immediate` mode calls complete at once (creations succeed), and the factory only records them.
public final class MockResourceFactory: Sendable {
    /// Whether calls wait for the test.
    public enum Mode: Sendable {
        /// Calls complete at once (creations succeed).
        case immediate
        /// Calls wait until the test completes them.
        case manual
    }

    /// A `create()` call waiting for the test.
    public struct PendingCreation: Sendable {
        /// The id the resource gets if the creation succeeds.
        public let id: Int
        fileprivate let continuation: UnsafeContinuation<MockResource, any Error>

        /// Completes the creation with a new resource.
        @discardableResult
        public func succeed() -> MockResource {
            let resource = MockResource(id: self.id)
            self.continuation.resume(returning: resource)
            return resource
        }

        /// Fails the creation.
        public func fail(_ error: any Error = MockCreationError()) {
            self.continuation.resume(throwing: error)
        }
    }

    /// A `close()` call waiting for the test.
    public struct PendingClose: Sendable {
        /// The resource being closed.
        public let resource: MockResource
        fileprivate let continuation: UnsafeContinuation<Void, any Error>

        /// Completes the close.
        public func succeed() {
            self.continuation.resume()
        }

        /// Fails the close (the pool logs it and forgets the resource).
        public func fail(_ error: any Error = MockCreationError()) {
            self.continuation.resume(throwing: error)
        }
    }

    private struct State {
        var nextID = 1
        var created: [MockResource] = []
        var closed: [MockResource] = []
        var createCalls = 0
        var pendingCreations: Deque<PendingCreation> = []
        var creationObservers: Deque<UnsafeContinuation<PendingCreation, Never>> = []
        var pendingCloses: Deque<PendingClose> = []
        var closeObservers: Deque<UnsafeContinuation<PendingClose, Never>> = []
    }

    /// Protects everything the factory records.
    private let state = Mutex<State>(State())
    private let creationMode: Mode
    private let closingMode: Mode

    /// Creates a factory.
    ///
    /// - Parameters:
    ///   - creation: whether creations wait for the test. Default `.immediate`.
    ///   - closing: whether closes wait for the test. Default `.immediate`.
    public init(creation: Mode = .immediate, closing: Mode = .immediate) {
        self.creationMode = creation
        self.closingMode = closing
    }

    /// The factory to give the pool.
    public var factory: ResourceFactory<MockResource> {
        ResourceFactory(
            create: { try await self.create() },
            close: { try await self.close($0) }
        )
    }

    /// Resources created so far, in order.
    public var created: [MockResource] { self.state.withLock { $0.created } }

    /// Resources closed so far, in order.
    public var closed: [MockResource] { self.state.withLock { $0.closed } }

    /// How many times `create()` was called (successful or not).
    public var createCalls: Int { self.state.withLock { $0.createCalls } }

    /// Waits for the next `create()` call (in manual mode) and returns it for the test to complete.
    public func nextCreation() async -> PendingCreation {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<PendingCreation, Never>) in
            let ready: PendingCreation? = self.state.withLock { state in
                if let pending = state.pendingCreations.popFirst() { return pending }
                state.creationObservers.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Waits for the next `close()` call (in manual mode) and returns it for the test to complete.
    public func nextClose() async -> PendingClose {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<PendingClose, Never>) in
            let ready: PendingClose? = self.state.withLock { state in
                if let pending = state.pendingCloses.popFirst() { return pending }
                state.closeObservers.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func create() async throws -> MockResource {
        let id = self.state.withLock { state -> Int in
            state.createCalls += 1
            defer { state.nextID += 1 }
            return state.nextID
        }
        let resource: MockResource
        switch self.creationMode {
        case .immediate:
            resource = MockResource(id: id)
        case .manual:
            resource = try await withUnsafeThrowingContinuation { continuation in
                let pending = PendingCreation(id: id, continuation: continuation)
                let observer: UnsafeContinuation<PendingCreation, Never>? = self.state.withLock { state in
                    if let observer = state.creationObservers.popFirst() { return observer }
                    state.pendingCreations.append(pending)
                    return nil
                }
                observer?.resume(returning: pending)
            }
        }
        self.state.withLock { $0.created.append(resource) }
        return resource
    }

    private func close(_ resource: MockResource) async throws {
        switch self.closingMode {
        case .immediate:
            break
        case .manual:
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let pending = PendingClose(resource: resource, continuation: continuation)
                let observer: UnsafeContinuation<PendingClose, Never>? = self.state.withLock { state in
                    if let observer = state.closeObservers.popFirst() { return observer }
                    state.pendingCloses.append(pending)
                    return nil
                }
                observer?.resume(returning: pending)
            }
        }
        self.state.withLock { $0.closed.append(resource) }
    }
}

/// The default error of a failed mock creation or close.
public struct MockCreationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A label to tell errors apart.
    public var label: String

    /// Creates an error.
    public init(_ label: String = "mock failure") {
        self.label = label
    }

    public var description: String { "MockCreationError(\(self.label))" }
}
