#if canImport(Reservoir)
import Reservoir
#endif

/// The pools compared in every scenario, in the order of the first round (later rounds rotate it).
enum ContenderKind: CaseIterable, Sendable {
    case floor
    case lockFloor
    case postgresNIO
    #if canImport(Reservoir)
    case reservoir
    case reservoirAllFeatures
    case reservoirAllFeaturesLease
    /// The all-features pool of `reservoirAllFeatures` while another task reads its statistics every millisecond;
    /// it runs only in scenarios with `readsStatistics`, where it is compared with `reservoirAllFeatures`.
    case reservoirAllFeaturesStatistics
    #endif

    /// The name used in the `name=value` lines.
    var key: String {
        switch self {
        case .floor: "floor"
        case .lockFloor: "floor_lock"
        case .postgresNIO: "postgres_nio"
        #if canImport(Reservoir)
        case .reservoir: "reservoir"
        case .reservoirAllFeatures: "reservoir_all"
        case .reservoirAllFeaturesLease: "reservoir_all_lease"
        case .reservoirAllFeaturesStatistics: "reservoir_all_stats"
        #endif
        }
    }

    /// The name printed in the table.
    var title: String {
        switch self {
        case .floor: "floor (plain actor)"
        case .lockFloor: "floor (plain Mutex)"
        case .postgresNIO: "postgres-nio 1.33.2"
        #if canImport(Reservoir)
        case .reservoir: "reservoir (defaults)"
        case .reservoirAllFeatures: "reservoir (all features)"
        case .reservoirAllFeaturesLease: "reservoir (all, lease())"
        case .reservoirAllFeaturesStatistics: "reservoir (all, stats/ms)"
        #endif
        }
    }

    /// Whether this pool runs in `scenario`: a scenario that reads statistics compares our all-features pool with
    /// and without the reader; the others compare every pool but that one.
    func runs(in scenario: Scenario) -> Bool {
        #if canImport(Reservoir)
        switch self {
        case .reservoirAllFeatures: return true
        case .reservoirAllFeaturesStatistics: return scenario.readsStatistics
        case .floor, .lockFloor, .postgresNIO, .reservoir, .reservoirAllFeaturesLease: return !scenario.readsStatistics
        }
        #else
        return !scenario.readsStatistics
        #endif
    }
}

/// The pools of one scenario, each over its own `resources` in-memory resources, started and warm.
struct Contenders: Sendable {
    let floor: FloorPool
    let lockFloor: LockFloorPool
    let postgresNIO: PostgresNIOBenchPool
    #if canImport(Reservoir)
    let reservoir: ReservoirBenchPool
    let reservoirAllFeatures: ReservoirBenchPool
    let reservoirAllFeaturesLease: ReservoirLeaseBenchPool
    #endif

    static func start(resources: Int) throws -> Contenders {
        #if canImport(Reservoir)
        return Contenders(
            floor: FloorPool(resources: (0..<resources).map { BenchResource(id: $0) }),
            lockFloor: LockFloorPool(resources: (0..<resources).map { BenchResource(id: $0) }),
            postgresNIO: PostgresNIOBenchPool(resources: resources),
            reservoir: try ReservoirBenchPool(resources: resources, allFeatures: false),
            reservoirAllFeatures: try ReservoirBenchPool(resources: resources, allFeatures: true),
            reservoirAllFeaturesLease: try ReservoirLeaseBenchPool(resources: resources)
        )
        #else
        return Contenders(
            floor: FloorPool(resources: (0..<resources).map { BenchResource(id: $0) }),
            lockFloor: LockFloorPool(resources: (0..<resources).map { BenchResource(id: $0) }),
            postgresNIO: PostgresNIOBenchPool(resources: resources)
        )
        #endif
    }

    /// Calls `runRound` with the concrete pool type of `kind`, so that each call is specialised.
    func runRound(
        _ kind: ContenderKind,
        _ scenario: Scenario,
        cycles: Int,
        waits: WaitBuffer
    ) async throws -> RoundMeasurement {
        switch kind {
        case .floor:
            try await bench_pool.runRound(self.floor, scenario, cycles: cycles, waits: waits)
        case .lockFloor:
            try await bench_pool.runRound(self.lockFloor, scenario, cycles: cycles, waits: waits)
        case .postgresNIO:
            try await bench_pool.runRound(self.postgresNIO, scenario, cycles: cycles, waits: waits)
        #if canImport(Reservoir)
        case .reservoir:
            try await bench_pool.runRound(self.reservoir, scenario, cycles: cycles, waits: waits)
        case .reservoirAllFeatures:
            try await bench_pool.runRound(self.reservoirAllFeatures, scenario, cycles: cycles, waits: waits)
        case .reservoirAllFeaturesLease:
            try await bench_pool.runRound(self.reservoirAllFeaturesLease, scenario, cycles: cycles, waits: waits)
        case .reservoirAllFeaturesStatistics:
            try await self.whileReadingStatistics {
                try await bench_pool.runRound(self.reservoirAllFeatures, scenario, cycles: cycles, waits: waits)
            }
        #endif
        }
    }

    /// Allocations per cycle of `kind` over one round of `cycles` cycles.
    func measureAllocations(
        _ kind: ContenderKind,
        _ scenario: Scenario,
        cycles: Int,
        waits: WaitBuffer
    ) async throws -> Double {
        switch kind {
        case .floor:
            try await bench_pool.measureAllocations(self.floor, scenario, cycles: cycles, waits: waits)
        case .lockFloor:
            try await bench_pool.measureAllocations(self.lockFloor, scenario, cycles: cycles, waits: waits)
        case .postgresNIO:
            try await bench_pool.measureAllocations(self.postgresNIO, scenario, cycles: cycles, waits: waits)
        #if canImport(Reservoir)
        case .reservoir:
            try await bench_pool.measureAllocations(self.reservoir, scenario, cycles: cycles, waits: waits)
        case .reservoirAllFeatures:
            try await bench_pool.measureAllocations(self.reservoirAllFeatures, scenario, cycles: cycles, waits: waits)
        case .reservoirAllFeaturesLease:
            try await bench_pool.measureAllocations(
                self.reservoirAllFeaturesLease,
                scenario,
                cycles: cycles,
                waits: waits
            )
        case .reservoirAllFeaturesStatistics:
            try await self.whileReadingStatistics {
                try await bench_pool.measureAllocations(
                    self.reservoirAllFeatures,
                    scenario,
                    cycles: cycles,
                    waits: waits
                )
            }
        #endif
        }
    }

    #if canImport(Reservoir)
    /// Runs `body` while another task reads the all-features pool's statistics every millisecond, and counts the
    /// reads in `statisticsReads`.
    func whileReadingStatistics<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let pool = self.reservoirAllFeatures.pool
        let reader = Task {
            var reads = 0
            while !Task.isCancelled {
                keepAlive(pool.statistics)
                reads += 1
                try? await Task.sleep(for: .milliseconds(1))
            }
            return reads
        }
        let value: T
        do {
            value = try await body()
        } catch {
            reader.cancel()
            statisticsReads.add(await reader.value)
            throw error
        }
        reader.cancel()
        statisticsReads.add(await reader.value)
        return value
    }
    #endif

    func shutdown() async {
        await self.floor.shutdown()
        await self.lockFloor.shutdown()
        await self.postgresNIO.shutdown()
        #if canImport(Reservoir)
        await self.reservoir.shutdown()
        await self.reservoirAllFeatures.shutdown()
        await self.reservoirAllFeaturesLease.shutdown()
        #endif
    }
}
