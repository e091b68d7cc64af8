// swift-tools-version:6.1
import PackageDescription

// Group arithmetic is tens of times slower without optimisation, so SintraCrypto is always built with -O,
// also in debug builds, to keep `swift test` fast. A root package may set unsafe flags on its own targets.
let optimizedCrypto: [SwiftSetting] = [.unsafeFlags(["-O"])]

let package = Package(
    name: "Sintra",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SintraCrypto", targets: ["SintraCrypto"]),
        .library(name: "SintraCore", targets: ["SintraCore"]),
        .library(name: "SintraReplica", targets: ["SintraReplica"]),
        .library(name: "SintraNetwork", targets: ["SintraNetwork"]),
        .library(name: "SintraStorage", targets: ["SintraStorage"]),
        .library(name: "SintraServer", targets: ["SintraServer"]),
        .library(name: "SintraClient", targets: ["SintraClient"]),
        .executable(name: "sintra", targets: ["sintra"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    ],
    targets: [
        .target(
            name: "SintraCrypto",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimizedCrypto
        ),
        .target(
            name: "SintraCore",
            dependencies: ["SintraCrypto", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "SintraReplica",
            dependencies: ["SintraCore", "SintraCrypto", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // NIO enters here: only SintraNetwork and the targets above it import it (STYLE.md, conventions 1).
        .target(
            name: "SintraNetwork",
            dependencies: [
                "SintraCore",
                "SintraCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A replica's durable state (delivered log, snapshots) in SQLite through GRDB (docs/DURABILITY.md).
        .target(
            name: "SintraStorage",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The networked replica: atomic broadcast over SintraNetwork feeding SintraReplica's executor.
        .target(
            name: "SintraServer",
            dependencies: [
                "SintraStorage",
                "SintraNetwork",
                "SintraReplica",
                "SintraCore",
                "SintraCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Clients of a SintraKV cluster: TLS to every replica's client port, t + 1 matching replies.
        .target(
            name: "SintraClient",
            dependencies: [
                "SintraCore",
                "SintraNetwork",
                "SintraReplica",
                "SintraCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "SintraSimulation",
            dependencies: [
                "SintraCore", "SintraCrypto", "SintraReplica", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "sintra",
            dependencies: [
                "SintraCrypto",
                "SintraSimulation",
                "SintraServer",
                "SintraStorage",
                "SintraClient",
                "SintraReplica",
                "SintraCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SintraCoreTests",
            dependencies: ["SintraCore", "SintraCrypto", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "SintraReplicaTests",
            dependencies: ["SintraReplica", "SintraCrypto"]
        ),
        .testTarget(
            name: "SintraNetworkTests",
            dependencies: [
                "SintraNetwork",
                "SintraCore",
                "SintraCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SintraServerTests",
            dependencies: [
                "SintraServer",
                "SintraStorage",
                "SintraClient",
                "SintraNetwork",
                "SintraReplica",
                "SintraCore",
                "SintraCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Real `sintra` processes on loopback (the debug binary next to the test bundle).
        .testTarget(
            name: "SintraIntegrationTests",
            dependencies: [
                "SintraClient",
                "SintraNetwork",
                "SintraReplica",
                "SintraCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "SintraStorageTests",
            dependencies: ["SintraStorage", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "SintraSimulationTests",
            dependencies: ["SintraSimulation", "SintraCore", "SintraCrypto", "SintraReplica"]
        ),
        .testTarget(
            name: "SintraCommandTests",
            dependencies: ["sintra", "SintraCrypto"]
        ),
        .testTarget(
            name: "SintraCryptoTests",
            dependencies: ["SintraCrypto", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Vectors")]
        ),
    ]
)
