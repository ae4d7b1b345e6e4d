// swift-tools-version:6.1
import PackageDescription

// The benchmarks are their own package so that the library never depends on what it is compared with.
// Each suite is one executable target named `bench-<suite>`; `bash Benchmarks/run <suite>` builds it in release
// mode and runs it.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ReservoirBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Reservoir", path: ".."),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", exact: "1.1.4"),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", exact: "1.6.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "bench-driver",
            dependencies: [
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                "CLibPQRaw",
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
            ],
            path: "Sources/bench-driver",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "bench-backpressure",
            dependencies: [
                .product(name: "ReservoirBackpressure", package: "Reservoir"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Sources/bench-backpressure",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "bench-postgres",
            dependencies: [
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Sources/bench-postgres",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "bench-testserver",
            dependencies: [
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
            ],
            path: "Sources/bench-testserver",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "bench-selfsize",
            dependencies: [
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
                .product(name: "Reservoir", package: "Reservoir"),
            ],
            path: "Sources/bench-selfsize",
            swiftSettings: swiftSettings
        ),
        // Counts the process's heap allocations (glibc malloc interposition); any suite may link it.
        .target(name: "CMallocCounter"),
        // libpq for the raw baseline of bench-driver (the library's own C module is not a product).
        .systemLibrary(name: "CLibPQRaw", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .executableTarget(
            name: "bench-pool",
            dependencies: [
                "CMallocCounter",
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["specialised-symbols.txt"],
            swiftSettings: swiftSettings
        ),
    ]
)
