// bench-backpressure: BoundedChannel against AsyncChannel, AsyncStream, the MPSC channel and a lock-and-deque floor;
// then the limiters. Usage: bash Benchmarks/run backpressure [--messages N] [--rounds R] [--skip-slow]
// Every figure is measured in this one process run, contenders interleaved round by round; medians and spread.
import Foundation

ensureInterposerPreloaded()

var messages = 1_000_000
var rounds = 3
var skipSlow = false
var onlyChannels = false
var onlyLimiters = false
var onlyContender: String? = nil
var onlyScenario: String? = nil
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--messages": messages = Int(arguments.next() ?? "") ?? messages
    case "--rounds": rounds = Int(arguments.next() ?? "") ?? rounds
    case "--skip-slow": skipSlow = true
    case "--channels": onlyChannels = true
    case "--limiters": onlyLimiters = true
    case "--only": onlyContender = arguments.next()
    case "--scenario": onlyScenario = arguments.next()
    default:
        FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
        exit(64)
    }
}

let scenarios = [
    Scenario(name: "p1_c1", producers: 1, consumers: 1),
    Scenario(name: "p4_c1", producers: 4, consumers: 1),
    Scenario(name: "p4_c4", producers: 4, consumers: 4),
]

print(
    "bench-backpressure: \(messages) Int messages per run, capacity \(capacity), \(rounds) rounds, "
        + "\(ProcessInfo.processInfo.activeProcessorCount) cores, allocations counted: \(interposerActive)")

var results: [String: [Measurement]] = [:]  // "scenario/contender"
let slow: Set<String> = ["async_channel", "async_stream_unbounded", "async_stream_oldest64"]

if !onlyLimiters {
    for round in 0..<rounds {
        for scenario in scenarios {
            // Interleave: rotate the order every round so no contender always runs first or last.
            let applicable = contenders.filter { !($0.singleConsumerOnly && scenario.consumers > 1) }
                .filter { !(skipSlow && slow.contains($0.name)) }
                .filter { onlyContender == nil || onlyContender!.split(separator: ",").contains(Substring($0.name)) }
            if onlyScenario != nil && scenario.name != onlyScenario { continue }
            if applicable.isEmpty { continue }
            let offset = round % applicable.count
            for contender in applicable[offset...] + applicable[..<offset] {
                let measurement = await measure(messages: messages) {
                    await contender.run(scenario, messages, round)
                }
                results["\(scenario.name)/\(contender.name)", default: []].append(measurement)
            }
        }
        FileHandle.standardError.write(Data("round \(round + 1)/\(rounds) done\n".utf8))
    }

    print("")
    print("| scenario | channel | delivered msg/s (median) | spread (min–max) | dropped | mallocs/msg | peak heap |")
    print("|---|---|---|---|---|---|---|")
    for scenario in scenarios {
        for contender in contenders {
            guard let runs = results["\(scenario.name)/\(contender.name)"] else { continue }
            let rates = runs.map(\.rate)
            let dropped = runs.map { Double($0.dropped) / Double(messages) }
            let mallocs = runs.map { Double($0.mallocs) / Double(messages) }
            let peak = runs.map { Double($0.peakHeapBytes) }
            print(
                "| \(scenario.name) | \(contender.name) | \(formatRate(median(rates))) | "
                    + "\(formatRate(rates.min()!))–\(formatRate(rates.max()!)) | "
                    + "\(format(median(dropped) * 100, 1))% | \(format(median(mallocs), 3)) | "
                    + "\(format(median(peak) / 1024, 0)) KiB |"
            )
        }
    }
}

var limiterLines: [(String, String)] = []
if !onlyChannels {
    limiterLines = await runLimiterBenchmarks()
}

print("")
@MainActor func ratio(_ scenario: String, _ other: String) -> String? {
    guard let ours = results["\(scenario)/bounded_channel"], let theirs = results["\(scenario)/\(other)"] else {
        return nil
    }
    return format(median(ours.map(\.rate)) / median(theirs.map(\.rate)), 3)
}
for scenario in scenarios where !onlyLimiters {
    for (label, other) in [
        ("async_channel", "async_channel"), ("async_stream", "async_stream_unbounded"),
        ("async_stream_oldest64", "async_stream_oldest64"), ("mpsc_channel", "mpsc_channel_wm32_64"),
        ("lock_deque_floor", "lock_deque_floor"),
    ] {
        if let value = ratio(scenario.name, other) {
            print("channel.\(scenario.name).ratio_vs_\(label)=\(value)")
        }
    }
    if let runs = results["\(scenario.name)/bounded_channel"] {
        print("channel.\(scenario.name).msgs_per_s=\(Int(median(runs.map(\.rate))))")
        if interposerActive {
            print(
                "channel.\(scenario.name).mallocs_per_msg=\(format(median(runs.map { Double($0.mallocs) / Double(messages) }), 4))"
            )
        }
    }
}
for (name, value) in limiterLines { print("\(name)=\(value)") }
