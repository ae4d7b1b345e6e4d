import Testing

@testable import ReservoirCommand

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("quantiles of a uniform spread are within 2 %")
    func quantiles() {
        var histogram = LatencyHistogram()
        for i in 1...10_000 { histogram.record(seconds: Double(i) * 1e-5) }  // 10 µs … 100 ms
        #expect(histogram.count == 10_000)
        #expect(abs(histogram.quantile(0.5) / 0.05 - 1) < 0.02)
        #expect(abs(histogram.quantile(0.99) / 0.099 - 1) < 0.02)
        #expect(histogram.quantile(1) == 0.1)
        #expect(abs(histogram.mean - 0.050005) < 1e-9)
    }

    @Test("an empty histogram reports zero, and bad values are ignored")
    func emptyAndBadValues() {
        var histogram = LatencyHistogram()
        #expect(histogram.quantile(0.99) == 0)
        histogram.record(seconds: -1)
        histogram.record(seconds: .nan)
        histogram.record(seconds: .infinity)
        #expect(histogram.count == 0)
    }

    @Test("merging adds counts and keeps the maximum")
    func merging() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        a.record(.milliseconds(1))
        b.record(.milliseconds(9))
        b.record(.milliseconds(9))
        a.merge(b)
        #expect(a.count == 3)
        #expect(abs(a.maximum - 0.009) < 1e-12)
        #expect(abs(a.quantile(0.5) / 0.009 - 1) < 0.02)
    }
}
