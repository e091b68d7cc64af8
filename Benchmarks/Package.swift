// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so that the main package's build stays light (see STYLE.md).
// Build and run from this folder:
//   swift package --allow-writing-to-package-directory benchmark     (package-benchmark, Benchmarks/*)
//   swift run -c release crypto-compare                              (Sintra and libsodium side by side)
//   swift run -c release differential                                (byte-for-byte check against libsodium)
// libsodium is loaded at run time with dlopen (no headers needed), see Sources/LibsodiumReference.
let package = Package(
    name: "SintraBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Sintra", path: ".."),
        // The repository was renamed from package-benchmark to benchmark; the plugin warns about the old identity.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The dlopen-based libsodium loader shared by every target below.
        .target(name: "LibsodiumReference"),
        // The package-benchmark suite. Threshold coin and TDH2 benchmarks go into ThresholdBenchmarks.swift
        // of this target (registerThresholdBenchmarks), and their side-by-side rows into thresholdComparisons()
        // of crypto-compare.
        .executableTarget(
            name: "GroupBenchmarks",
            dependencies: [
                "LibsodiumReference",
                .product(name: "SintraCrypto", package: "Sintra"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/GroupBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Wire encoding and decoding of protocol messages.
        .executableTarget(
            name: "ProtocolBenchmarks",
            dependencies: [
                .product(name: "SintraCore", package: "Sintra"),
                .product(name: "SintraCrypto", package: "Sintra"),
                .product(name: "SintraReplica", package: "Sintra"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ProtocolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "crypto-compare",
            dependencies: ["LibsodiumReference", .product(name: "SintraCrypto", package: "Sintra")]
        ),
        .executableTarget(
            name: "differential",
            dependencies: ["LibsodiumReference", .product(name: "SintraCrypto", package: "Sintra")]
        ),
    ]
)
