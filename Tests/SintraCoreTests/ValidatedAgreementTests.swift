import SintraCore
import SintraCrypto
import Testing

/// Validated agreement (CKPS01 with the commit step): agreement, external validity, termination.
@Suite struct ValidatedAgreementTests {
    static let path = InstancePath("mvba", 1)
    /// The external predicate of these tests: values start with the byte 0x56 ("V").
    static let predicate: @Sendable ([UInt8]) -> Bool = { $0.first == 0x56 }

    static func network(n: Int, t: Int, seed: UInt64) throws -> TestNetwork<ValidatedAgreement.Instance> {
        let (configuration, keys) = try TestCluster.keys(n: n, t: t, seed: 3)
        var nodes = [Int: ValidatedAgreement.Instance]()
        for me in 1...n {
            nodes[me] = ValidatedAgreement.Instance(
                configuration: configuration, keys: keys[me - 1], path: path,
                random: .seeded(seed &* 1000 &+ UInt64(me)), predicate: predicate)
        }
        return TestNetwork(replicas: n, nodes: nodes, seed: seed)
    }

    @Test(arguments: [(4, 1), (7, 2)]) func agreementValidityAndTermination(n: Int, t: Int) throws {
        for seed in UInt64(1)...4 {
            var network = try Self.network(n: n, t: t, seed: seed)
            let silent = Set((n - t + 1)...n)
            network.crashed = silent
            for me in 1...n where !silent.contains(me) {
                network.absorb(network.nodes[me]!.propose([0x56, UInt8(me)]), from: me)
            }
            network.run()
            let decisions = (1...n).filter { !silent.contains($0) }.map { network.outputs[$0] ?? [] }
            for outputs in decisions {
                #expect(outputs.count == 1, "seed \(seed): every honest party decides once")
            }
            let values = Set(decisions.compactMap { $0.first?.value })
            #expect(values.count == 1, "seed \(seed): agreement")
            if let value = values.first {
                #expect(Self.predicate(value), "external validity")
                #expect(!silent.contains(Int(value[1])), "the decided proposal was broadcast by a live party")
            }
        }
    }

    /// A Byzantine proposer's invalid value is never signed, so it can never be decided.
    @Test func invalidProposalsAreNeverDecided() throws {
        let n = 4
        for seed in UInt64(1)...4 {
            var network = try Self.network(n: n, t: 1, seed: seed)
            for me in 1...3 {
                network.absorb(network.nodes[me]!.propose([0x56, UInt8(me)]), from: me)
            }
            // Node 4 broadcasts an invalid value through the proposal channel.
            let invalid = ValidatedAgreement.Message.proposal(sender: 4, .send(payload: [0x00, 4]))
            for to in 1...n { network.inject(invalid.encoded, from: 4, to: to) }
            network.crashed = [4]
            network.run()
            let values = Set((1...3).compactMap { network.outputs[$0]?.first?.value })
            #expect(values.count == 1)
            #expect(values.allSatisfy(Self.predicate))
        }
    }
}
