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
        .executable(name: "sintra", targets: ["sintra"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
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
        .target(
            name: "SintraSimulation",
            dependencies: ["SintraCore", "SintraCrypto", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "sintra",
            dependencies: [
                "SintraCrypto",
                "SintraSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
            name: "SintraSimulationTests",
            dependencies: ["SintraSimulation", "SintraCore", "SintraCrypto"]
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
