import Foundation
import MallocInterposerSwift
import Synchronization

/// Re-runs this process with the malloc interposer preloaded, so that allocations can be counted.
///
/// On Linux the interposer only sees every `malloc` when it is `LD_PRELOAD`ed; the library is built next to this
/// executable because the target depends on it.
func ensureInterposerPreloaded() {
    let environment = ProcessInfo.processInfo.environment
    if environment["LD_PRELOAD"]?.contains("libMallocInterposerSwift") == true { return }
    if environment["BENCH_NO_INTERPOSER"] != nil { return }
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let library = executable.deletingLastPathComponent().appendingPathComponent("libMallocInterposerSwift.so")
    guard FileManager.default.fileExists(atPath: library.path) else {
        FileHandle.standardError.write(Data("note: \(library.path) not found; allocations not counted\n".utf8))
        return
    }
    setenv("LD_PRELOAD", library.path, 1)
    let arguments = CommandLine.arguments
    var cArguments = arguments.map { strdup($0) } + [nil]
    execv(executable.path, &cArguments)
    FileHandle.standardError.write(Data("note: re-exec with the interposer failed; allocations not counted\n".utf8))
}

var interposerActive: Bool {
    ProcessInfo.processInfo.environment["LD_PRELOAD"]?.contains("libMallocInterposerSwift") == true
}

/// Samples live heap bytes (allocated minus freed since the last reset) on its own thread and keeps the peak.
final class HeapSampler: Sendable {
    private let running = Atomic<Bool>(false)
    private let peak = Atomic<Int>(0)
    private let done = Atomic<Bool>(true)

    func start() {
        peak.store(0, ordering: .relaxed)
        running.store(true, ordering: .relaxed)
        done.store(false, ordering: .relaxed)
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                let statistics = MallocInterposerSwift.getStatistics()
                let live = statistics.mallocBytesCount - statistics.freeBytesCount
                if live > peak.load(ordering: .relaxed) { peak.store(live, ordering: .relaxed) }
                usleep(500)
            }
            done.store(true, ordering: .releasing)
        }
        thread.start()
    }

    func stop() -> Int {
        running.store(false, ordering: .relaxed)
        while !done.load(ordering: .acquiring) { usleep(100) }
        return peak.load(ordering: .relaxed)
    }
}

struct Measurement {
    var seconds: Double
    var delivered: Int
    var dropped: Int
    var mallocs: Int
    var peakHeapBytes: Int

    var rate: Double { Double(delivered) / seconds }
}

/// Runs `body` once with allocation counting and heap sampling around it.
func measure(messages: Int, _ body: () async -> (delivered: Int, dropped: Int)) async -> Measurement {
    let sampler = HeapSampler()
    let counting = interposerActive
    let sampling = counting && ProcessInfo.processInfo.environment["BENCH_NO_HEAP_SAMPLER"] == nil
    if counting {
        MallocInterposerSwift.reset()
        MallocInterposerSwift.hook()
        if sampling { sampler.start() }
    }
    let start = ContinuousClock.now
    let (delivered, dropped) = await body()
    let elapsed = start.duration(to: .now)
    var mallocs = -1
    var peak = -1
    if counting {
        peak = sampling ? sampler.stop() : -1
        MallocInterposerSwift.unhook()
        mallocs = MallocInterposerSwift.getStatistics().mallocCount
    }
    let (seconds, attoseconds) = elapsed.components
    return Measurement(
        seconds: Double(seconds) + Double(attoseconds) / 1e18,
        delivered: delivered,
        dropped: dropped,
        mallocs: mallocs,
        peakHeapBytes: peak
    )
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let middle = sorted.count / 2
    return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

func formatRate(_ value: Double) -> String {
    value >= 1e6 ? "\(format(value / 1e6))M" : "\(format(value / 1e3, 1))k"
}
