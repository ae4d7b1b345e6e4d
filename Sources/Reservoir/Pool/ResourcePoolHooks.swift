import CoreMetrics
import DequeModule
import Logging

/// How the pool creates and closes resources.
public struct ResourceFactory<Resource: Sendable>: Sendable {
    /// Creates one resource. Runs in a child task of the pool's `run()`; a thrown error counts as a creation failure
    /// (backoff, circuit breaker).
    public var create: @Sendable () async throws -> Resource
    /// Closes one resource. Runs in a child task of `run()` (or, after `run()` ended, in the task that returned the
    /// resource). A thrown error is logged; the resource is forgotten either way.
    public var close: @Sendable (Resource) async throws -> Void

    /// Creates a factory.
    ///
    /// - Parameters:
    ///   - create: creates one resource.
    ///   - close: closes one resource.
    public init(
        create: @escaping @Sendable () async throws -> Resource,
        close: @escaping @Sendable (Resource) async throws -> Void
    ) {
        self.create = create
        self.close = close
    }
}

/// Optional code the pool runs at points of a resource's life.
///
/// Every hook is async. A hook that throws is logged (warning) and counted in
/// `reservoir.pool.hook_failures{hook=…}`; it never crashes the pool and never reaches the caller: the resource is
/// treated as bad and replaced. Hooks must not acquire from the same pool (that can deadlock a full pool).
public struct ResourcePoolHooks<Resource: Sendable>: Sendable {
    /// Runs after a resource is created, before anyone can lease it (for example session setup). Throwing closes the
    /// resource and counts as a creation failure.
    public var afterCreate: (@Sendable (Resource) async throws -> Void)?

    /// Validates a resource before a lease when ``ResourcePoolConfiguration/validation`` says so (or after
    /// ``ResourcePool/requestIdleValidation()``). Runs in the acquiring task. Returning `false` or throwing closes
    /// the resource and the pool tries another, without the caller seeing it; the caller keeps its turn (it is served
    /// before callers that came later) and its original deadline.
    public var beforeLease: (@Sendable (Resource, ResourceValidationContext) async throws -> Bool)?

    /// Runs when a lease ends, in the releasing task (for example: roll back an open transaction). Returns whether to
    /// keep the resource; throwing discards it. Runs even when the holder marked the resource broken (the context
    /// says so); such a resource is discarded whatever the hook returns.
    public var afterRelease: (@Sendable (Resource, ResourceReleaseContext) async throws -> ResourceReleaseDecision)?

    /// Checks an idle resource every ``ResourcePoolConfiguration/keepAliveInterval`` (for example `SELECT 1`).
    /// Runs in a child task of `run()`; throwing closes the resource.
    public var keepAlive: (@Sendable (Resource) async throws -> Void)?

    /// Runs before a resource is closed (for example a goodbye message). Runs in the closing task.
    public var beforeClose: (@Sendable (Resource) async throws -> Void)?

    /// Creates a set of hooks; all are optional.
    public init(
        afterCreate: (@Sendable (Resource) async throws -> Void)? = nil,
        beforeLease: (@Sendable (Resource, ResourceValidationContext) async throws -> Bool)? = nil,
        afterRelease: (@Sendable (Resource, ResourceReleaseContext) async throws -> ResourceReleaseDecision)? = nil,
        keepAlive: (@Sendable (Resource) async throws -> Void)? = nil,
        beforeClose: (@Sendable (Resource) async throws -> Void)? = nil
    ) {
        self.afterCreate = afterCreate
        self.beforeLease = beforeLease
        self.afterRelease = afterRelease
        self.keepAlive = keepAlive
        self.beforeClose = beforeClose
    }
}

/// What the before-lease hook knows about the resource it validates.
public struct ResourceValidationContext: Sendable, Equatable {
    /// How long the resource sat idle before this lease.
    public var idleDuration: Duration
    /// How long ago the resource was created.
    public var age: Duration
    /// How many leases the resource served before this one.
    public var useCount: Int
    /// Whether ``ResourcePool/requestIdleValidation()`` flagged the resource (for example after another holder saw a
    /// connection error), as opposed to validation because of idle time.
    public var validationRequested: Bool

    /// Creates a context (the pool creates them; public for tests of hooks).
    public init(idleDuration: Duration, age: Duration, useCount: Int, validationRequested: Bool) {
        self.idleDuration = idleDuration
        self.age = age
        self.useCount = useCount
        self.validationRequested = validationRequested
    }
}

/// What the after-release hook knows about the lease that ended.
public struct ResourceReleaseContext: Sendable {
    /// Where the lease was acquired.
    public var acquireSite: AcquireSite
    /// Whether the holder marked the resource broken (`release(discarding: true)`); it is closed in any case.
    public var markedBroken: Bool
    /// The error that ended the `withResource` body, if it threw (`nil` for explicit releases and normal returns).
    public var error: (any Error)?

    /// Creates a context (the pool creates them; public for tests of hooks).
    public init(acquireSite: AcquireSite, markedBroken: Bool, error: (any Error)?) {
        self.acquireSite = acquireSite
        self.markedBroken = markedBroken
        self.error = error
    }
}

/// What the after-release hook decides.
public struct ResourceReleaseDecision: Sendable, Equatable {
    @usableFromInline var keep: Bool
    @usableFromInline var validateIdle: Bool

    /// The resource is clean: back into the pool.
    public static let keep = ResourceReleaseDecision(keep: true, validateIdle: false)
    /// Close the resource and replace it if needed.
    public static let discard = ResourceReleaseDecision(keep: false, validateIdle: false)
    /// Close the resource, and validate every idle resource before its next lease (the failure may have hit them too,
    /// for example a connection error after a failover).
    public static let discardAndValidateIdle = ResourceReleaseDecision(keep: false, validateIdle: true)
}

/// Where a lease was acquired: `#fileID`, `#line` and `#function` of the acquire call, captured as default
/// arguments (no stack walk, no allocation).
public struct AcquireSite: Sendable, CustomStringConvertible {
    /// The `#fileID` of the acquire call.
    public var fileID: StaticString
    /// The `#line` of the acquire call.
    public var line: UInt
    /// The `#function` of the acquire call.
    public var function: StaticString

    /// Creates a site.
    @inlinable
    public init(fileID: StaticString, line: UInt, function: StaticString) {
        self.fileID = fileID
        self.line = line
        self.function = function
    }

    /// `Module/File.swift:42 in function(_:)`.
    public var description: String {
        "\(self.fileID):\(self.line) in \(self.function)"
    }
}
