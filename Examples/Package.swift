// swift-tools-version:6.1
import PackageDescription

// Examples are their own package, so that the library never depends on what they show it with.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ReservoirExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Reservoir", path: ".."),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
    ],
    targets: [
        .target(
            name: "PrometheusExample",
            dependencies: [
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "prometheus-example",
            dependencies: [
                "PrometheusExample",
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The README's usage example, exactly as printed, compiled as top-level code (ReadmeExampleTests checks that
        // the two are the same text).
        .executableTarget(
            name: "readme-example",
            dependencies: [
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // What a new package has: Swift 6 mode and nothing else.
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // A real service on the library: an orders API over a PostgresPool, guarded by limiters, with a job queue.
        .target(
            name: "OrdersService",
            dependencies: [
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirBackpressure", package: "Reservoir"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "orders-service",
            dependencies: [
                "OrdersService",
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OrdersServiceTests",
            dependencies: [
                "OrdersService",
                .product(name: "ReservoirPostgres", package: "Reservoir"),
                .product(name: "ReservoirBackpressure", package: "Reservoir"),
                .product(name: "ReservoirPostgresTestKit", package: "Reservoir"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrometheusExampleTests",
            dependencies: [
                "PrometheusExample",
                .product(name: "Reservoir", package: "Reservoir"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
