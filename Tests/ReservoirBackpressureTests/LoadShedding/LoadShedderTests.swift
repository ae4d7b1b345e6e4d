import Testing

@testable import ReservoirBackpressure

@Suite("Load shedder")
struct LoadShedderTests {
    @Test("predicts the queueing time from depth, concurrency and mean service time")
    func predicts() throws {
        let shedder = try LoadShedder(smoothing: 0.5)
        #expect(shedder.predictedWait(queueDepth: 10, concurrency: 2) == .zero)
        shedder.recordServiceTime(.milliseconds(10))
        shedder.recordServiceTime(.milliseconds(30))
        #expect(shedder.meanServiceTime == .milliseconds(20))
        #expect(shedder.predictedWait(queueDepth: 3, concurrency: 2) == .milliseconds(40))
    }

    @Test("rejects at once when the prediction exceeds the budget")
    func rejects() throws {
        let shedder = try LoadShedder()
        shedder.recordServiceTime(.milliseconds(10))
        try shedder.check(queueDepth: 3, concurrency: 1, budget: .milliseconds(40))
        #expect(throws: BackpressureError(.shed, message: "")) {
            try shedder.check(queueDepth: 4, concurrency: 1, budget: .milliseconds(40))
        }
    }

    @Test("invalid smoothing names the field", arguments: [0.0, -1, 1.5])
    func invalid(smoothing: Double) {
        #expect(throws: BackpressureError(.invalidConfiguration, message: "")) {
            _ = try LoadShedder(smoothing: smoothing)
        }
    }
}
