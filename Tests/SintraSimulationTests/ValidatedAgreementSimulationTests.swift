import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// Seeded runs of validated agreement (CKPS01 with the commit step) against every adversary, with t
/// Byzantine nodes: agreement, external validity and termination after every run.
@Suite struct ValidatedAgreementSimulationTests {
    /// (n, t, first seed, seeds per adversary): 1,584 runs. A run costs about 60 ms of CPU at n = 4 in a
    /// debug build and 200 ms at n = 7; the n = 4 seeds are split in two so that both cores work.
    static let cases: [(Int, Int, UInt64, Int)] = [(4, 1, 40_000, 70), (4, 1, 40_070, 70), (7, 2, 47_000, 4)]

    @Test(arguments: cases)
    func everyAdversaryLeavesTheInvariantsIntact(replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(for: "mvba", replicas: replicas, faulty: faulty)
        #expect(runner.adversaries.map(\.name) == [
            "silent", "crash", "garbage", "replay", "flood", "invalid", "equivocate", "withhold", "bad-vote", "starve",
            "partition",
        ])
        let summary = runner.runMany(firstSeed: firstSeed, seeds: seeds, adversaries: runner.adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        for adversary in summary.adversaries {
            #expect(adversary.runsWithAllHonestOutputs == adversary.runs, "\(adversary.adversary)")
            // The decision iteration is recorded for every honest node.
            #expect(adversary.decisionRounds.reduce(0) { $0 + $1.count } == adversary.runs * (replicas - faulty))
        }
        let faults = Dictionary(uniqueKeysWithValues: summary.adversaries.map { ($0.adversary, $0.faults) })
        // Invalid proposals and bad votes are caught, not just outvoted.
        #expect(faults["invalid"]!.contains { $0.kind == "invalidProof" })
        #expect(faults["bad-vote"]!.contains { $0.kind == "invalidProof" })
        #expect(faults["bad-vote"]!.contains { $0.kind == "unjustified" })
        #expect(faults["garbage"]!.contains { $0.kind == "malformed" })
    }

    /// External validity allows the value of a Byzantine proposer, if valid: over many seeds an
    /// equivocating proposer's value (either of its two) is decided sometimes, an invalid one never.
    @Test func byzantineProposalsAreDecidedOnlyWhenValid() throws {
        let runner = try SimulationCatalog.runner(for: "mvba", replicas: 4, faulty: 1)
        for name in ["equivocate", "invalid"] {
            let adversary = try #require(runner.adversary(named: name))
            let results = (0..<30).map { runner.run(seed: 41_000 + UInt64($0), adversary: adversary) }
            #expect(results.allSatisfy { $0.violations.isEmpty })
            let byzantineDecided = results.filter { result in
                result.outputs.contains { $0.contains("candidate \(result.byzantine[0]):") }
            }
            if name == "equivocate" {
                #expect(!byzantineDecided.isEmpty, "a valid Byzantine proposal can win")
            } else {
                #expect(byzantineDecided.isEmpty, "an invalid proposal is never certified, so never decided")
            }
        }
    }

    @Test func theExternalPredicateNeedsItsChecksum() {
        let value = ValidatedAgreementAdapter.value(body: [3, 1, 4])
        #expect(ValidatedAgreementAdapter.isValid(value))
        for index in value.indices {
            var flipped = value
            flipped[index] ^= 0x10
            #expect(!ValidatedAgreementAdapter.isValid(flipped))
        }
        #expect(!ValidatedAgreementAdapter.isValid(Array(value.dropLast())))
        let long = ValidatedAgreementAdapter.value(body: [UInt8](repeating: 1, count: 60))
        #expect(!ValidatedAgreementAdapter.isValid(long))
    }
}
