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
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
    ],
    targets: [
        // Counts the process's heap allocations (glibc malloc interposition); any suite may link it.
        .target(name: "CMallocCounter"),
        .executableTarget(
            name: "bench-pool",
            dependencies: [
                "CMallocCounter",
                .product(name: "ResourcePool", package: "Reservoir"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["specialised-symbols.txt"],
            swiftSettings: swiftSettings
        ),
    ]
)
