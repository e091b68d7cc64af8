import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// Seeded runs of ABBA against every adversary (including split-and-steer), with t Byzantine nodes.
/// Every vote is signed and checked, so runs cost far more than broadcast runs; n = 4 gets most seeds.
@Suite struct BinaryAgreementSimulationTests {
    static let cases: [(Int, Int, Int)] = [(4, 1, 20), (7, 2, 4), (10, 3, 2)]

    @Test(arguments: cases)
    func everyAdversaryLeavesTheInvariantsIntact(replicas: Int, faulty: Int, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(for: "abba", replicas: replicas, faulty: faulty)
        #expect(runner.adversaries.map(\.name).suffix(7) == [
            "equivocate", "vote-both", "bad-coin", "forge-certificate", "starve", "partition", "steer",
        ])
        let summary = runner.runMany(firstSeed: 3000 * UInt64(replicas), seeds: seeds, adversaries: runner.adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        for adversary in summary.adversaries {
            // Every run decides (termination is checked per run; this also shows rounds were recorded).
            #expect(adversary.runsWithAllHonestOutputs == adversary.runs, "\(adversary.adversary)")
            #expect(adversary.roundsMean != nil)
        }
        // The Byzantine nodes misbehaved and were caught (with few seeds, a decision can come before any of
        // their coin shares is looked at).
        guard seeds >= 10 else { return }
        let faults = Dictionary(uniqueKeysWithValues: summary.adversaries.map { ($0.adversary, $0.faults) })
        #expect(faults["flood"]!.contains { $0.kind == "outOfWindow" })
        #expect(faults["forge-certificate"]!.contains { $0.kind == "malformed" })
        #expect(faults["bad-coin"]!.contains { $0.kind == "invalidProof" })
        #expect(faults["replay"]!.contains { $0.kind == "invalidProof" })
    }

    @Test func splitAndSteerDecidesEveryTime() throws {
        let runner = try SimulationCatalog.runner(for: "abba", replicas: 4, faulty: 1)
        let steer = try #require(runner.adversary(named: "steer"))
        let summary = runner.runMany(firstSeed: 300, seeds: 20, adversaries: [steer])
        #expect(summary.violations.isEmpty, "\(summary.text)")
        // The steering costs the protocol rounds (the random scheduler decides almost always in round 1 or
        // 2), yet every honest node decides.
        #expect(summary.adversaries[0].roundsMax! >= 3)
    }

    @Test func theSteeringSchedulerReadsTheCoinFromOneHonestShare() throws {
        let cluster = try SimulationCluster.deal(replicas: 4, faulty: 1)
        let path = InstancePath("sim").child("run", 1).child("abba", 0)
        let context = SimulationContext(
            configuration: cluster.configuration, keys: cluster.keys, path: path,
            limits: WireLimits(memberCount: 4), byzantine: [4], honest: [1, 2, 3], seed: 1)
        var steering = BinaryAgreementSteering(context: context)
        var random = ProtocolRandom.seeded(9)
        let name = BinaryAgreement.coinName(path: path, round: 1)
        let shares = [1, 2].map { cluster.keys[$0 - 1].coinShare.coinShare(name: name, using: &random) }
        let key = cluster.configuration.coinKey
        let coin = try key.combineCoin(shares.map { try key.verifyCoinShare($0, name: name) }, name: name).bit
        #expect(steering.knownCoins[1] == nil)
        let signature = [UInt8](repeating: 0, count: 64)
        let certificate = QuorumCertificate(signatures: [])
        let forCoin = BinaryAgreement.Message.preVote(
            round: 1, value: coin, justification: .preProcessed(certificate), signature: signature)
        let againstCoin = BinaryAgreement.Message.preVote(
            round: 1, value: !coin, justification: .preProcessed(certificate), signature: signature)
        #expect(steering.rank(forCoin, from: 1, to: 2) == steering.rank(againstCoin, from: 1, to: 2))
        // A share with the wrong index is ignored; one valid honest share plus the coalition's is enough.
        steering.observe(.coinShare(round: 1, share: shares[0]), from: 2, to: 3)
        #expect(steering.knownCoins[1] == nil)
        steering.observe(.coinShare(round: 1, share: shares[0]), from: 1, to: 3)
        #expect(steering.knownCoins[1] == coin)
        #expect(steering.rank(againstCoin, from: 1, to: 2) < steering.rank(forCoin, from: 1, to: 2))
        #expect(steering.rank(forCoin, from: 1, to: 4) == 0)
    }
}
