// bench-pool: our ResourcePool side by side with postgres-nio's pool and a plain actor pool (the floor), in one
// process, interleaved round by round, over identical in-memory resources. See Benchmarks/README.md.
import Foundation

let usage = """
    usage: bench-pool [--rounds N] [--scale X] [--quick] [--scenario NAME]... [--only POOL]... [--no-allocations]

      --rounds N         measured rounds per scenario (default 7); each round runs every contender once,
                         in an order that rotates from round to round
      --scale X          multiply the cycles per round by X (default 1)
      --quick            3 rounds at a fifth of the cycles: a smoke run while developing
      --scenario NAME    run only this scenario (repeatable): uncontended, c64_r8, c1000_r8, c64_r8_stats
                         (c64_r8_stats: c64_r8 on reservoir_all with and without a task reading the pool's
                         statistics every millisecond, interleaved; its ratio line compares the two)
      --only POOL        run only this pool (repeatable; for profilers): \(ContenderKind.allCases.map(\.key)
                             .joined(separator: ", ")); ratio lines need reservoir_all and postgres_nio
      --no-allocations   skip the allocation-counting pass
    """

struct Options {
    var rounds = 7
    var scale = 1.0
    var scenarios: [String] = []
    var pools: [String] = []
    var countAllocations = true

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var remaining = arguments[...]
        func value(after flag: String) -> String {
            guard let value = remaining.popFirst() else {
                fail("\(flag) needs a value")
            }
            return value
        }
        while let argument = remaining.popFirst() {
            switch argument {
            case "--rounds":
                guard let rounds = Int(value(after: argument)), rounds > 0 else { fail("--rounds needs a number > 0") }
                options.rounds = rounds
            case "--scale":
                guard let scale = Double(value(after: argument)), scale > 0 else { fail("--scale needs a number > 0") }
                options.scale = scale
            case "--quick":
                options.rounds = 3
                options.scale = 0.2
            case "--scenario":
                options.scenarios.append(value(after: argument))
            case "--only":
                let key = value(after: argument)
                guard ContenderKind.allCases.contains(where: { $0.key == key }) else { fail("unknown pool '\(key)'") }
                options.pools.append(key)
            case "--no-allocations":
                options.countAllocations = false
            case "--help", "-h":
                print(usage)
                exit(0)
            default:
                fail("unknown argument '\(argument)'")
            }
        }
        return options
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("bench-pool: \(message)\n\(usage)\n".utf8))
    exit(64)
}

func progress(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}

// MARK: - Statistics

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// What one contender did over all rounds of a scenario.
struct ContenderSummary {
    var kind: ContenderKind
    var rounds: [RoundMeasurement] = []
    var allocationsPerCycle: Double?

    var throughputs: [Double] { self.rounds.map(\.cyclesPerSecond) }
    var medianThroughput: Double { median(self.throughputs) }
    var minimumThroughput: Double { self.throughputs.min() ?? 0 }
    var maximumThroughput: Double { self.throughputs.max() ?? 0 }
    /// Half the range of the rounds' throughputs, relative to the median.
    var spreadPercent: Double {
        let median = self.medianThroughput
        return median == 0 ? 0 : (self.maximumThroughput - self.minimumThroughput) / 2 / median * 100
    }
    var medianCPUPerCycle: Double { median(self.rounds.map(\.cpuNanosecondsPerCycle)) }
    var medianP50Wait: Double { median(self.rounds.map { $0.waitPercentile(0.50) }) }
    var medianP99Wait: Double { median(self.rounds.map { $0.waitPercentile(0.99) }) }
    var medianMeanWait: Double { median(self.rounds.map(\.meanWait)) }
    func medianP99OverImplied(_ scenario: Scenario) -> Double {
        median(self.rounds.map { $0.waitPercentile(0.99) / max(1, $0.impliedWaitNanoseconds(scenario)) })
    }
    var fewestTasksThatLeased: Int { self.rounds.map(\.tasksThatLeased).min() ?? 0 }
    var fewestCyclesOfATask: Int { self.rounds.map(\.fewestCyclesOfATask).min() ?? 0 }
    var mostCyclesOfATask: Int { self.rounds.map(\.mostCyclesOfATask).max() ?? 0 }
}

// MARK: - Formatting

func padded(_ text: String, _ width: Int, right: Bool = true) -> String {
    guard text.count < width else { return text }
    let padding = String(repeating: " ", count: width - text.count)
    return right ? padding + text : text + padding
}

func grouped(_ value: Double) -> String {
    let digits = String(Int(value.rounded()))
    var result = ""
    for (offset, character) in digits.reversed().enumerated() {
        if offset > 0 && offset % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return String(result.reversed())
}

func fixed(_ value: Double, _ decimals: Int) -> String {
    String(format: "%.\(decimals)f", value)
}

/// Nanoseconds as microseconds with two decimals.
func micros(_ nanoseconds: Double) -> String {
    fixed(nanoseconds / 1000, 2)
}

// MARK: - The run

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))

let allScenarios = [
    Scenario(name: "uncontended", tasks: 1, resources: 8, holdAcrossYield: false, cyclesPerRound: 100_000),
    Scenario(name: "c64_r8", tasks: 64, resources: 8, holdAcrossYield: true, cyclesPerRound: 50_000),
    Scenario(name: "c1000_r8", tasks: 1000, resources: 8, holdAcrossYield: true, cyclesPerRound: 50_000),
    Scenario(
        name: "c64_r8_stats",
        tasks: 64,
        resources: 8,
        holdAcrossYield: true,
        cyclesPerRound: 50_000,
        readsStatistics: true
    ),
]
for name in options.scenarios where !allScenarios.contains(where: { $0.name == name }) {
    fail("unknown scenario '\(name)'")
}
let scenarios = allScenarios
    .filter { options.scenarios.isEmpty || options.scenarios.contains($0.name) }
    .map { scenario -> Scenario in
        var scenario = scenario
        scenario.cyclesPerRound = max(1_000, Int(Double(scenario.cyclesPerRound) * options.scale))
        return scenario
    }

let kinds = ContenderKind.allCases.filter { options.pools.isEmpty || options.pools.contains($0.key) }
let countingWorks = options.countAllocations && allocationCountingWorks()

print("Pool benchmark: \(kinds.count) pools in one process, interleaved, \(options.rounds) measured rounds per scenario")
print("(the order of the pools rotates each round; each pool gets one unmeasured warm-up round first).")
print("A cycle is acquire + release through the pool's scoped API; resources are in-memory objects, 8 per pool.")
print("Pools: " + kinds.map(\.title).joined(separator: ", ") + ".")
if options.countAllocations && !countingWorks {
    print("Allocation counting is unavailable on this platform (needs glibc): allocations are not reported.")
}

var results: [String: [ContenderKind: ContenderSummary]] = [:]
var harnessAllocations: [String: Double] = [:]
var checksum = 0

for scenario in scenarios {
    let scenarioKinds = kinds.filter { $0.runs(in: scenario) }
    guard !scenarioKinds.isEmpty else { continue }
    print("")
    print("== \(scenario.name): \(scenario.summary); \(grouped(Double(scenario.cyclesPerRound))) cycles per round")
    let contenders = try Contenders.start(resources: scenario.resources)
    let waits = WaitBuffer(capacity: scenario.cyclesPerRound)
    defer { waits.deallocate() }

    var summaries = Dictionary(uniqueKeysWithValues: scenarioKinds.map { ($0, ContenderSummary(kind: $0)) })

    for kind in scenarioKinds {
        let warmUp = try await contenders.runRound(kind, scenario, cycles: scenario.cyclesPerRound / 4, waits: waits)
        checksum &+= warmUp.checksum
    }
    for round in 0..<options.rounds {
        progress("  \(scenario.name): round \(round + 1) of \(options.rounds)")
        for position in 0..<scenarioKinds.count {
            let kind = scenarioKinds[(position + round) % scenarioKinds.count]
            let measurement = try await contenders.runRound(kind, scenario, cycles: scenario.cyclesPerRound, waits: waits)
            checksum &+= measurement.checksum
            summaries[kind]!.rounds.append(measurement)
        }
    }
    if countingWorks {
        let allocationCycles = min(scenario.cyclesPerRound, 20_000)
        let harness = try await measureAllocations(NullPool(), scenario, cycles: allocationCycles, waits: waits)
        harnessAllocations[scenario.name] = harness
        for kind in scenarioKinds {
            let total = try await contenders.measureAllocations(kind, scenario, cycles: allocationCycles, waits: waits)
            summaries[kind]!.allocationsPerCycle = max(0, total - harness)
        }
    }
    await contenders.shutdown()

    let contended = scenario.tasks > scenario.resources
    var header = padded("pool", 26, right: false) + padded("cycles/s", 11) + padded("min", 11) + padded("max", 11)
        + padded("spread", 8) + padded("cpu/cyc", 9) + padded("p50 wait", 11) + padded("p99 wait", 11)
    if contended {
        header += padded("p99/FIFO", 10) + padded("tasks", 11) + padded("per task", 12)
    }
    header += padded("allocs", 8)
    print(header)
    for kind in scenarioKinds {
        let summary = summaries[kind]!
        var line = padded(kind.title, 26, right: false)
            + padded(grouped(summary.medianThroughput), 11)
            + padded(grouped(summary.minimumThroughput), 11)
            + padded(grouped(summary.maximumThroughput), 11)
            + padded("±" + fixed(summary.spreadPercent, 1) + "%", 8)
            + padded(micros(summary.medianCPUPerCycle) + "µs", 9)
            + padded(micros(summary.medianP50Wait) + "µs", 11)
            + padded(micros(summary.medianP99Wait) + "µs", 11)
        if contended {
            line += padded(fixed(summary.medianP99OverImplied(scenario), 2) + "×", 10)
                + padded("\(summary.fewestTasksThatLeased)/\(scenario.tasks)", 11)
                + padded("\(summary.fewestCyclesOfATask)–\(summary.mostCyclesOfATask)", 12)
        }
        line += padded(summary.allocationsPerCycle.map { fixed($0, 2) } ?? "–", 8)
        print(line)
    }
    if contended {
        let implied = summaries[scenarioKinds[0]]!.rounds.map { $0.impliedWaitNanoseconds(scenario) }
        print("  p99/FIFO: p99 wait over the wait that strict FIFO implies, (tasks − resources) / throughput")
        print("  (\(micros(median(implied)))µs for \(scenarioKinds[0].title)); FIFO-fair when ≤ 1.5×.")
        print("  tasks: fewest tasks that got a lease in a round; per task: fewest–most cycles of one task in a round.")
    }
    if let harness = harnessAllocations[scenario.name] {
        print("  allocs: mallocs per cycle over one counted round, net of the harness's own \(fixed(harness, 3)).")
    }
    results[scenario.name] = summaries
}

keepAlive(checksum)

#if canImport(Reservoir)
let ours = ContenderKind.reservoirAllFeatures
print("")
print("Metrics recorded by the all-features pools through BenchMetricsFactory (events summed over every pool):")
for line in benchMetricsFactory.summary() {
    print("  \(line)")
}
#endif

// MARK: - name=value lines

print("")
for scenario in scenarios {
    guard let summaries = results[scenario.name] else { continue }
    for kind in kinds {
        guard let summary = summaries[kind] else { continue }
        let prefix = "pool.\(scenario.name).\(kind.key)"
        print("\(prefix).cycles_per_second=\(Int(summary.medianThroughput.rounded()))")
        print("\(prefix).spread_percent=\(fixed(summary.spreadPercent, 1))")
        print("\(prefix).cpu_ns_per_cycle=\(fixed(summary.medianCPUPerCycle, 0))")
        print("\(prefix).p50_wait_us=\(micros(summary.medianP50Wait))")
        print("\(prefix).p99_wait_us=\(micros(summary.medianP99Wait))")
        if scenario.tasks > scenario.resources {
            print("\(prefix).p99_over_fifo=\(fixed(summary.medianP99OverImplied(scenario), 2))")
            print("\(prefix).tasks_leased=\(summary.fewestTasksThatLeased)")
        }
        if let allocations = summary.allocationsPerCycle {
            print("\(prefix).allocations_per_cycle=\(fixed(allocations, 2))")
        }
    }
    #if canImport(Reservoir)
    if let mine = summaries[ours] {
        if let floor = summaries[.floor] {
            print("pool.\(scenario.name).ratio_vs_floor=\(fixed(mine.medianThroughput / floor.medianThroughput, 2))")
        }
        if let lockFloor = summaries[.lockFloor] {
            let ratio = mine.medianThroughput / lockFloor.medianThroughput
            print("pool.\(scenario.name).ratio_vs_lock_floor=\(fixed(ratio, 2))")
        }
        print("pool.\(scenario.name).ns_per_cycle=\(fixed(1e9 / mine.medianThroughput, 0))")
        if let theirs = summaries[.postgresNIO] {
            let ratio = theirs.medianCPUPerCycle / mine.medianCPUPerCycle
            print("pool.\(scenario.name).cpu_ratio_vs_postgres_nio=\(fixed(ratio, 2))")
        }
        if let mineAllocations = mine.allocationsPerCycle,
            let theirAllocations = summaries[.postgresNIO]?.allocationsPerCycle
        {
            print("pool.\(scenario.name).fewer_allocations_than_postgres_nio=\(mineAllocations < theirAllocations)")
        }
        if scenario.tasks > scenario.resources {
            print("pool.\(scenario.name).fifo_fair=\(mine.medianP99OverImplied(scenario) <= 1.5)")
        }
        // The same pool with and without the statistics reader, in the same rounds: the ratio of each round, then
        // their median and spread (half the range, relative to the median).
        if scenario.readsStatistics, let reading = summaries[.reservoirAllFeaturesStatistics] {
            let ratios = zip(reading.rounds, mine.rounds).map { $0.cyclesPerSecond / $1.cyclesPerSecond }
            let ratio = median(ratios)
            let spread = ratio == 0 ? 0 : ((ratios.max() ?? 0) - (ratios.min() ?? 0)) / 2 / ratio * 100
            let baseline = scenario.name.replacingOccurrences(of: "_stats", with: "")
            print("pool.\(scenario.name).ratio_vs_\(baseline)=\(fixed(ratio, 2))")
            print("pool.\(scenario.name).ratio_spread_percent=\(fixed(spread, 1))")
            print("pool.\(scenario.name).statistics_reads=\(statisticsReads.value)")
        }
    }
    #endif
}
#if canImport(Reservoir)
for scenario in scenarios {
    guard let summaries = results[scenario.name] else { continue }
    if let mine = summaries[ours], let theirs = summaries[.postgresNIO] {
        print("pool.\(scenario.name).ratio_vs_postgres_nio=\(fixed(mine.medianThroughput / theirs.medianThroughput, 2))")
    }
}
#endif
