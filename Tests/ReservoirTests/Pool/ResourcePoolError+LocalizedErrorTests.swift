import Foundation
import Reservoir
import ReservoirTestKit
import Testing

@Suite("ResourcePool errors describe themselves")
struct ResourcePoolErrorLocalizedTests {
    @Test("localizedDescription says what went wrong, for the pool's and the test kit's errors")
    func localizedDescriptions() {
        let errors: [any Error] = [
            ResourcePoolError(.timeout, message: "no resource became available"),
            MockCreationError("mock failure"),
        ]
        for error in errors {
            #expect(!error.localizedDescription.contains("The operation could not be completed"))
        }
        #expect(errors[0].localizedDescription.contains("no resource became available"))
    }
}
