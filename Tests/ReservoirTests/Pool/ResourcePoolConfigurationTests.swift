import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePoolConfiguration: validation")
struct ResourcePoolConfigurationTests {
    static let invalid: [(String, @Sendable (inout ResourcePoolConfiguration) -> Void)] = [
        ("name", { $0.name = "" }),
        ("minimumSize", { $0.minimumSize = -1 }),
        ("maximumSize", { $0.maximumSize = 0 }),
        ("minimumSize", { $0.minimumSize = 11 }),
        ("maximumConcurrentCreations", { $0.maximumConcurrentCreations = 0 }),
        ("acquireTimeout", { $0.acquireTimeout = .zero }),
        ("acquireTimeout", { $0.acquireTimeout = .seconds(-1) }),
        ("maximumWaiters", { $0.maximumWaiters = -1 }),
        ("idleTimeout", { $0.idleTimeout = .zero }),
        ("maximumLifetime", { $0.maximumLifetime = .seconds(-5) }),
        ("maximumLifetimeJitter", { $0.maximumLifetimeJitter = 1.5 }),
        ("maximumLifetimeJitter", { $0.maximumLifetimeJitter = .nan }),
        ("keepAliveInterval", { $0.keepAliveInterval = .zero }),
        ("validation", { $0.validation = .ifIdle(atLeast: .seconds(-1)) }),
        ("leakThreshold", { $0.leakThreshold = .zero }),
        ("creationBackoff.initial", { $0.creationBackoff.initial = .zero }),
        ("creationBackoff.multiplier", { $0.creationBackoff.multiplier = 0.5 }),
        ("creationBackoff.maximum", { $0.creationBackoff.maximum = .milliseconds(1) }),
        ("creationBackoff.jitter", { $0.creationBackoff.jitter = -0.1 }),
        ("circuitBreakerThreshold", { $0.circuitBreakerThreshold = 0 }),
        ("drainTimeout", { $0.drainTimeout = .seconds(-1) }),
        ("statisticsWindow", { $0.statisticsWindow = .zero }),
        ("sizingHeadroom", { $0.sizingHeadroom = -1 }),
    ]

    @Test("an invalid field throws invalidConfiguration naming it", arguments: 0..<invalid.count)
    func invalidField(index: Int) throws {
        let (field, change) = Self.invalid[index]
        var configuration = ResourcePoolConfiguration()
        change(&configuration)
        let factory = MockResourceFactory()
        let error = #expect(throws: ResourcePoolError.self) {
            _ = try ResourcePool(configuration: configuration, factory: factory.factory)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.field == field)
        #expect(error?.message.contains(field) == true)
    }

    @Test("the defaults are valid and documented values")
    func defaults() throws {
        let configuration = ResourcePoolConfiguration()
        #expect(configuration.minimumSize == 0)
        #expect(configuration.maximumSize == 10)
        #expect(configuration.acquireTimeout == .seconds(30))
        #expect(configuration.circuitBreakerThreshold == 5)
        #expect(configuration.validation == .ifIdle(atLeast: .seconds(1)))
        _ = try ResourcePool(configuration: configuration, factory: MockResourceFactory().factory)
    }

    @Test("errors compare by code and describe themselves without secrets")
    func errorEquality() {
        let one = ResourcePoolError(.timeout, message: "a")
        let two = ResourcePoolError(.timeout, message: "b", underlying: MockCreationError())
        #expect(one == two)
        #expect(one != ResourcePoolError(.shutDown, message: "a"))
        #expect(two.description.contains("timeout"))
        #expect(two.description.contains("MockCreationError"))
    }
}
