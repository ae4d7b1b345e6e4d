// swift-tools-version:6.2
import PackageDescription

/// One settings array, applied to every target.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Reservoir",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Reservoir", targets: ["Reservoir"]),
        .library(name: "ReservoirTestKit", targets: ["ReservoirTestKit"]),
        .library(name: "ReservoirTestClock", targets: ["ReservoirTestClock"]),
        .library(name: "ReservoirBackpressure", targets: ["ReservoirBackpressure"]),
        .library(name: "ReservoirPostgres", targets: ["ReservoirPostgres"]),
        .library(name: "ReservoirPostgresTestKit", targets: ["ReservoirPostgresTestKit"]),
        .executable(name: "reservoir", targets: ["reservoir"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.1.0"),
        // `swift package generate-documentation --target <module>`: builds the DocC catalogues (CI does, without
        // warnings). A command plugin only: nothing of it is linked into the library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The generic pool and its test kit.
        .target(
            name: "Reservoir",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A manual clock for tests of anything that takes a Clock (the pool, the backpressure primitives).
        .target(
            name: "ReservoirTestClock",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ReservoirTestKit",
            dependencies: [
                "Reservoir",
                "ReservoirTestClock",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // Backpressure: channels and limiters, independent of the pool.
        .target(
            name: "ReservoirBackpressure",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // PostgreSQL: libpq, the driver and the pool specialised for it; a throwaway server for tests.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "ReservoirPostgres",
            dependencies: [
                "CLibPQ",
                "Reservoir",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ReservoirPostgresTestKit",
            swiftSettings: swiftSettings
        ),

        // The `reservoir` command: demo, advise, check.
        .target(
            name: "ReservoirCommand",
            dependencies: [
                "Reservoir",
                "ReservoirPostgres",
                "ReservoirPostgresTestKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "reservoir",
            dependencies: [
                "ReservoirCommand",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // Tests: state machines and shells (Tests/), and against a real PostgreSQL (IntegrationTests/).
        .testTarget(
            name: "ReservoirTests",
            dependencies: [
                "Reservoir",
                "ReservoirTestKit",
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReservoirBackpressureTests",
            dependencies: [
                "ReservoirBackpressure",
                "ReservoirTestClock",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReservoirPostgresTests",
            dependencies: [
                "ReservoirPostgres",
                "Reservoir",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReservoirCommandTests",
            dependencies: [
                "ReservoirCommand",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReservoirIntegrationTests",
            dependencies: [
                "ReservoirCommand",
                "ReservoirPostgresTestKit",
                "ReservoirPostgres",
                "Reservoir",
                "ReservoirTestKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            path: "IntegrationTests",
            swiftSettings: swiftSettings
        ),
    ]
)
