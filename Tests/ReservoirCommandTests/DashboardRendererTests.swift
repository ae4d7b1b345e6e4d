import Testing

@testable import ReservoirCommand

@Suite("Dashboard renderer")
struct DashboardRendererTests {
    var snapshot: DashboardSnapshot {
        var snapshot = DashboardSnapshot()
        snapshot.poolName = "demo"
        snapshot.elapsed = .milliseconds(4_500)
        snapshot.duration = .seconds(20)
        snapshot.idle = 2
        snapshot.leased = 5
        snapshot.creating = 1
        snapshot.maximumSize = 8
        snapshot.effectiveMaximumSize = 6
        snapshot.waiters = 3
        snapshot.acquireWaitP50 = 0.000_042
        snapshot.acquireWaitP99 = 0.0135
        snapshot.holdTimeP50 = 0.0012
        snapshot.holdTimeP99 = 0.25
        snapshot.throughput = 4_321.4
        snapshot.completed = 19_000
        snapshot.failed = 2
        snapshot.leaks = [.init(site: "Demo/Workload.swift:88 leakOne()", count: 1)]
        snapshot.dirtyReturns = [.init(site: "Demo/Workload.swift:120 dirtyReturn()", count: 2)]
        return snapshot
    }

    @Test("the plain line carries every figure as key=value")
    func plainLine() {
        let line = DashboardRenderer.plainLine(snapshot)
        #expect(
            line == "t=4.5s idle=2 leased=5 creating=1 waiters=3 effective_max=6 max=8 wait_p50=0.042ms "
                + "wait_p99=13.50ms "
                + "hold_p50=1.20ms hold_p99=250ms ops_per_s=4321 completed=19000 failed=2 leaks=1 dirty_returns=2"
        )
    }

    @Test("the terminal frame clears the screen, names the leak and dirty-return sites, and fits the width")
    func frame() {
        let frame = DashboardRenderer.frame(snapshot, width: 80)
        #expect(frame.hasPrefix("\u{1B}[H\u{1B}[2J"))
        #expect(frame.contains("1× at Demo/Workload.swift:88 leakOne()"))
        #expect(frame.contains("2× at Demo/Workload.swift:120 dirtyReturn()"))
        #expect(frame.contains("max 6 of 8 (self-sizing)"))
        let visibleWidths = frame.split(separator: "\n").map { line in
            line.replacing(/\u{1B}\[[0-9;]*[A-Za-z]/, with: "").count
        }
        #expect(visibleWidths.allSatisfy { $0 <= 80 })
    }

    @Test("fixed-point formatting rounds half away and pads decimals", arguments: [
        (1.005, 2, "1.00"), (2.5, 0, "3"), (0.1, 3, "0.100"), (-1.25, 1, "-1.3"), (99.999, 2, "100.00"),
    ])
    func fixed(value: Double, decimals: Int, expected: String) {
        #expect(DashboardRenderer.fixed(value, decimals) == expected)
    }
}
