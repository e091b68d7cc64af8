import Benchmark
import LibsodiumReference
import SintraCrypto

// ristretto255 operations of SintraCrypto, and the same operations in the system's libsodium, reported in
// microseconds. Run from Benchmarks/: swift package --allow-writing-to-package-directory benchmark
// For a side-by-side table with ratios from one process, use `swift run -c release crypto-compare`.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )
    registerSintraGroupBenchmarks()
    do {
        registerLibsodiumGroupBenchmarks(try Libsodium())
    } catch {
        print("GroupBenchmarks: libsodium benchmarks skipped: \(error)")
    }
    registerThresholdBenchmarks()
}

/// Inputs built once per process. Pools of `poolSize` entries are used round robin, so that no operation sees
/// a single input only.
struct Inputs: Sendable {
    static let poolSize = 64
    static let shared = Inputs()

    let scalars: [Scalar]
    let scalarBytes: [[UInt8]]
    let points: [GroupElement]
    let pointBytes: [[UInt8]]
    let uniformBytes: [[UInt8]]
    let messages: [[UInt8]]
    let domain = Array("sintra-benchmark-hash-to-group".utf8)

    init() {
        scalars = (0..<Inputs.poolSize).map { _ in Scalar.random() }
        scalarBytes = scalars.map(\.bytes)
        points = (0..<Inputs.poolSize).map { _ in GroupElement.generatorMultiple(Scalar.random()) }
        pointBytes = points.map(\.encoded)
        uniformBytes = (0..<Inputs.poolSize).map { _ in (0..<64).map { _ in UInt8.random(in: 0...255) } }
        messages = (0..<Inputs.poolSize).map { _ in (0..<32).map { _ in UInt8.random(in: 0...255) } }
    }

    /// `count` scalars and elements starting at pool position `first`, for multi-scalar multiplication.
    func multiscalarInput(count: Int, first: Int) -> ([Scalar], [GroupElement]) {
        let indices = (0..<count).map { (first + $0) % Inputs.poolSize }
        return (indices.map { scalars[$0] }, indices.map { points[($0 + 1) % Inputs.poolSize] })
    }
}

func registerSintraGroupBenchmarks() {
    let inputs = Inputs.shared
    let mask = Inputs.poolSize - 1
    Benchmark("Sintra: variable-base scalar multiplication") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(inputs.scalars[index & mask] * inputs.points[index & mask])
        }
    }
    Benchmark("Sintra: variable-base scalar multiplication, bytes to bytes") { benchmark in
        for index in benchmark.scaledIterations {
            let scalar = try! Scalar(canonicalBytes: inputs.scalarBytes[index & mask])
            let element = try! GroupElement(encoded: inputs.pointBytes[index & mask])
            blackHole((scalar * element).encoded)
        }
    }
    Benchmark("Sintra: fixed-base scalar multiplication") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(GroupElement.generatorMultiple(inputs.scalars[index & mask]))
        }
    }
    Benchmark("Sintra: fixed-base scalar multiplication, bytes to bytes") { benchmark in
        for index in benchmark.scaledIterations {
            let scalar = try! Scalar(canonicalBytes: inputs.scalarBytes[index & mask])
            blackHole(GroupElement.generatorMultiple(scalar).encoded)
        }
    }
    Benchmark("Sintra: decode") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(try? GroupElement(encoded: inputs.pointBytes[index & mask]))
        }
    }
    Benchmark("Sintra: encode") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(inputs.points[index & mask].encoded)
        }
    }
    Benchmark("Sintra: from uniform bytes") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(GroupElement(uniformBytes: inputs.uniformBytes[index & mask]))
        }
    }
    Benchmark("Sintra: hash to group") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(HashToGroup.element(inputs.messages[index & mask], domain: inputs.domain))
        }
    }
    for count in [2, 32] {
        Benchmark("Sintra: multi-scalar verification, \(count) points") { benchmark in
            let sets = (0..<8).map { inputs.multiscalarInput(count: count, first: $0 * count) }
            benchmark.startMeasurement()
            for index in benchmark.scaledIterations {
                let (scalars, elements) = sets[index % sets.count]
                blackHole(GroupElement.multiscalarVariableTime(scalars, elements))
            }
        }
    }
}

/// The libsodium side. Its API takes and returns encodings, so each of these includes the decoding and
/// encoding that the "bytes to bytes" Sintra benchmarks include.
func registerLibsodiumGroupBenchmarks(_ sodium: Libsodium) {
    let inputs = Inputs.shared
    let mask = Inputs.poolSize - 1
    Benchmark("libsodium: variable-base scalar multiplication") { benchmark in
        for index in benchmark.scaledIterations {
            let slot = index & mask
            blackHole(sodium.call(sodium.scalarMultiply, inputs.scalarBytes[slot], inputs.pointBytes[slot]))
        }
    }
    Benchmark("libsodium: fixed-base scalar multiplication") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(sodium.call(sodium.scalarMultiplyBase, inputs.scalarBytes[index & mask]))
        }
    }
    Benchmark("libsodium: decode (is_valid_point)") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(sodium.isValid(inputs.pointBytes[index & mask]))
        }
    }
    Benchmark("libsodium: from uniform bytes (from_hash)") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(sodium.call(sodium.fromHash, inputs.uniformBytes[index & mask]))
        }
    }
    Benchmark("libsodium: hash to group (SHA-512 expand, from_hash)") { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(sodium.hashToGroup(inputs.messages[index & mask], domain: inputs.domain))
        }
    }
    for count in [2, 32] {
        // libsodium has no multi-scalar multiplication: one scalar multiplication per point and an addition
        // per product is what a libsodium caller does.
        Benchmark("libsodium: multi-scalar verification, \(count) points") { benchmark in
            for index in benchmark.scaledIterations {
                let first = index * count
                var sum = sodium.call(
                    sodium.scalarMultiply, inputs.scalarBytes[first & mask], inputs.pointBytes[(first + 1) & mask])
                for offset in 1..<count {
                    let slot = (first + offset) & mask
                    let product = sodium.call(
                        sodium.scalarMultiply, inputs.scalarBytes[slot], inputs.pointBytes[(slot + 1) & mask])
                    sum = sodium.call(sodium.add, sum.bytes, product.bytes)
                }
                blackHole(sum)
            }
        }
    }
}
