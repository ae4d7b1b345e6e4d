import Reservoir
import ReservoirTestKit
import Testing

@Suite("MockResourceFactory")
struct MockResourceFactoryTests {
    @Test("in manual mode the test completes each creation and close")
    func manual() async throws {
        let mock = MockResourceFactory(creation: .manual, closing: .manual)
        let factory = mock.factory
        let creation = Task { try await factory.create() }
        let pending = await mock.nextCreation()
        #expect(pending.id == 1)
        pending.succeed()
        let resource = try await creation.value
        #expect(resource == MockResource(id: 1))
        let failing = Task { try await factory.create() }
        await mock.nextCreation().fail(MockCreationError("nope"))
        await #expect(throws: MockCreationError("nope")) { try await failing.value }
        let close = Task { try await factory.close(resource) }
        let pendingClose = await mock.nextClose()
        #expect(pendingClose.resource == resource)
        pendingClose.succeed()
        try await close.value
        #expect(mock.created == [resource])
        #expect(mock.closed == [resource])
        #expect(mock.createCalls == 2)
    }
}
