import Benchmark
import SintraCore
import SintraCrypto

// Protocol-level benchmarks: wire encoding and decoding of real protocol messages. (One ABBA instance end to
// end in the simulator is timed by `sintra sim` in release; see BENCHMARKS.md.) Run from Benchmarks/:
//   swift package --allow-writing-to-package-directory benchmark --target ProtocolBenchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 3,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )
    registerWireBenchmarks()
    registerClientRequestBenchmarks()
}

/// Typical messages: a consistent-broadcast c-final with an n − t certificate (n = 16), a reliable-broadcast
/// r-send of 1 KiB, and an atomic-broadcast a-queue of 64 requests of 100 bytes.
struct WireSamples: Sendable {
    static let shared = WireSamples()

    let limits = WireLimits(memberCount: 16)
    let final: ConsistentBroadcast.Message
    let send: ReliableBroadcast.Message
    let queue: AtomicBroadcast.Message

    init() {
        var random = ProtocolRandom.seeded(1)
        let keys = (1...16).map { index in
            (try? NodeIdentity(index: index, seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }))!
        }
        let statement = SignedStatement(domain: "c-ready", path: "bench/vcbc:1", payload: [1, 2, 3])
        let certificate = QuorumCertificate(signatures: keys.prefix(11).map {
            QuorumCertificate.Signature(member: $0.index, bytes: $0.sign(statement))
        })
        final = .final(digest: statement.payloadDigest, certificate: certificate)
        send = .send(payload: [UInt8](repeating: 7, count: 1024))
        // An a-queue as it appears on the wire: tag, round, member, request count, requests, signature.
        var writer = ByteWriter()
        writer.write(UInt8(0))
        writer.write(UInt64(3))
        writer.write(UInt16(2))
        writer.write(UInt32(64))
        for index in 0..<64 { writer.writeVariable([UInt8](repeating: UInt8(index), count: 100)) }
        writer.writeFixed(keys[1].sign(statement))
        queue = (try? AtomicBroadcast.Message(encoded: writer.bytes, limits: limits))!
    }
}

func registerWireBenchmarks() {
    let samples = WireSamples.shared
    let finalBytes = samples.final.encoded
    let sendBytes = samples.send.encoded
    let queueBytes = samples.queue.encoded

    Benchmark("Wire: encode c-final with 11-signature certificate (\(finalBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(samples.final.encoded) }
    }
    Benchmark("Wire: decode c-final with 11-signature certificate (\(finalBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? ConsistentBroadcast.Message(encoded: finalBytes, limits: samples.limits))
        }
    }
    Benchmark("Wire: encode r-send of 1 KiB (\(sendBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(samples.send.encoded) }
    }
    Benchmark("Wire: decode r-send of 1 KiB (\(sendBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? ReliableBroadcast.Message(encoded: sendBytes, limits: samples.limits))
        }
    }
    Benchmark("Wire: encode a-queue of 64 requests (\(queueBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(samples.queue.encoded) }
    }
    Benchmark("Wire: decode a-queue of 64 requests (\(queueBytes.count) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? AtomicBroadcast.Message(encoded: queueBytes, limits: samples.limits))
        }
    }
}
