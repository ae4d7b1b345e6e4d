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
    ],
    targets: [
        .executableTarget(
            name: "bench-driver",
            dependencies: [
                .product(name: "PostgresPool", package: "Reservoir"),
                .product(name: "CLibPQ", package: "Reservoir"),
            ],
            path: "Sources/bench-driver",
            swiftSettings: swiftSettings
        ),
    ]
)
