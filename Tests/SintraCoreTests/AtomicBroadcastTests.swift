import SintraCore
import SintraCrypto
import Testing

/// Atomic broadcast: total order, agreement, no duplicates, and every submitted request delivered.
@Suite struct AtomicBroadcastTests {
    static let path = InstancePath("abc")

    static func network(n: Int, t: Int, seed: UInt64) throws -> TestNetwork<AtomicBroadcast.Instance> {
        let (configuration, keys) = try TestCluster.keys(n: n, t: t, seed: 4)
        var nodes = [Int: AtomicBroadcast.Instance]()
        for me in 1...n {
            nodes[me] = AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[me - 1], path: path, random: .seeded(seed &* 77 &+ UInt64(me)))
        }
        return TestNetwork(replicas: n, nodes: nodes, seed: seed)
    }

    @Test(arguments: [(4, 1), (7, 2)]) func totalOrderAndNoLoss(n: Int, t: Int) throws {
        for seed in UInt64(1)...3 {
            var network = try Self.network(n: n, t: t, seed: seed)
            let silent = n
            network.crashed = [silent]
            var submitted = Set<[UInt8]>()
            // Each request goes to every replica, as clients do; some to only one (still delivered if
            // that replica is honest, because its queue is eventually in a decided vector or re-proposed).
            for index in 0..<12 {
                let request = Array("request \(index)".utf8)
                submitted.insert(request)
                for me in 1..<n {
                    let (_, effects) = network.nodes[me]!.submit(request)
                    network.absorb(effects, from: me)
                }
            }
            network.run()
            let sequences = (1..<n).map { node in (network.outputs[node] ?? []).flatMap(\.requests) }
            for sequence in sequences {
                #expect(sequence == sequences[0], "seed \(seed): same order everywhere")
                #expect(Set(sequence).count == sequence.count, "no duplicates")
            }
            #expect(Set(sequences[0]) == submitted, "seed \(seed): every request delivered")
            let duplicate = network.nodes[1]!.submit(Array("request 0".utf8)).0
            #expect(duplicate == .duplicate)
        }
    }

    /// A party that falls more rounds behind than the window catches up from t + 1 matching answers and
    /// delivers exactly the same batches (the parties ahead will never resend what it dropped).
    @Test func laggardCatchesUpBeyondTheWindow() throws {
        var network = try Self.network(n: 4, t: 1, seed: 5)
        network.withheld = [4]
        var submitted = [[UInt8]]()
        for index in 0..<8 {
            let request = Array("late \(index)".utf8)
            submitted.append(request)
            for me in 1...3 {
                let (_, effects) = network.nodes[me]!.submit(request)
                network.absorb(effects, from: me)
            }
            network.run()
        }
        #expect(network.nodes[1]!.round > 1 + network.nodes[4]!.limits.futureRoundWindow + 1)
        network.release(4)
        network.run()
        let reference = (network.outputs[1] ?? []).map(\.requests)
        #expect(Set(reference.flatMap { $0 }) == Set(submitted))
        #expect((network.outputs[4] ?? []).map(\.requests) == reference)
        #expect(network.nodes[4]!.caughtUpRoundCount > 0)
        #expect(network.nodes[4]!.round == network.nodes[1]!.round)
    }
}
