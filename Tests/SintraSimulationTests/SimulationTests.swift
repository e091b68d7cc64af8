import SintraCore
import SintraSimulation
import Testing

/// Seeded runs of Bracha reliable broadcast against every adversary, with t Byzantine nodes.
@Suite struct ReliableBroadcastSimulationTests {
    static let shapes = [(4, 1), (7, 2), (10, 3)]
    /// Seeds per (shape, adversary); small n is cheap, so it gets more (n = 10 runs are dominated by floods).
    static func seeds(replicas: Int) -> Int { replicas == 4 ? 100 : replicas == 7 ? 30 : 10 }

    @Test(arguments: shapes)
    func everyAdversaryLeavesTheInvariantsIntact(replicas: Int, faulty: Int) throws {
        let runner = try SimulationCatalog.runner(for: "rbc", replicas: replicas, faulty: faulty)
        let summary = runner.runMany(
            firstSeed: 1000 * UInt64(replicas), seeds: Self.seeds(replicas: replicas), adversaries: runner.adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        for adversary in summary.adversaries {
            // Validity is exercised: with an honest sender (most runs) every honest node delivers.
            #expect(adversary.runsWithAllHonestOutputs > 0, "\(adversary.adversary)")
            #expect(adversary.stepsMax > 0)
        }
        // The Byzantine nodes really misbehaved, and were caught.
        let faults = Dictionary(uniqueKeysWithValues: summary.adversaries.map { ($0.adversary, $0.faults) })
        #expect(faults["garbage"]!.contains { $0.kind == "malformed" })
        #expect(faults["flood"]!.contains { $0.kind == "equivocation" })
        #expect(faults["replay"]!.contains { $0.kind == "notAllowed" })
    }

    @Test func everyGenericAndSpecificBehaviourIsOffered() throws {
        let runner = try SimulationCatalog.runner(for: "rbc", replicas: 4, faulty: 1)
        #expect(
            runner.adversaries.map(\.name)
                == ["silent", "crash", "garbage", "replay", "flood", "equivocate", "lie", "starve", "partition"])
    }
}

/// Seeded runs of (verifiable) consistent broadcast against every adversary, with t Byzantine nodes.
@Suite struct ConsistentBroadcastSimulationTests {
    static let cases: [(String, Int, Int, Int)] = [
        ("cbc", 4, 1, 40), ("cbc", 7, 2, 10), ("cbc", 10, 3, 4),
        ("vcbc", 4, 1, 40), ("vcbc", 7, 2, 10), ("vcbc", 10, 3, 4),
    ]

    @Test(arguments: cases)
    func everyAdversaryLeavesTheInvariantsIntact(name: String, replicas: Int, faulty: Int, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(for: name, replicas: replicas, faulty: faulty)
        let summary = runner.runMany(
            firstSeed: 2000 * UInt64(replicas), seeds: seeds, adversaries: runner.adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        let faults = Dictionary(uniqueKeysWithValues: summary.adversaries.map { ($0.adversary, $0.faults) })
        // Forged certificates are rejected: duplicate signers at decoding, the rest at verification.
        #expect(faults["forge-certificate"]!.contains { $0.kind == "invalidProof" || $0.kind == "notAllowed" })
        #expect(faults["forge-certificate"]!.contains { $0.kind == "malformed" })
    }

    @Test func equivocatingSenderNeverCertifiesTwoPayloads() throws {
        // With a Byzantine sender that splits the group and signs for every Byzantine member, some runs
        // deliver the real payload and none deliver the alternate (agreement would catch a split).
        let runner = try SimulationCatalog.runner(for: "cbc", replicas: 4, faulty: 1)
        let adversary = try #require(runner.adversary(named: "equivocate"))
        let results = (0..<40).map { runner.run(seed: 500 + UInt64($0), adversary: adversary) }
        #expect(results.allSatisfy { $0.violations.isEmpty })
        #expect(results.contains { $0.allHonestOutput })
    }
}

/// The same seed replays the same run; another seed gives another one.
@Suite struct ReplayTests {
    @Test(arguments: ["equivocate", "garbage", "replay", "starve", "partition"])
    func sameSeedSameTrace(adversaryName: String) throws {
        let runner = try SimulationCatalog.runner(for: "rbc", replicas: 7, faulty: 2)
        let adversary = try #require(runner.adversary(named: adversaryName))
        let first = runner.run(seed: 42, adversary: adversary)
        let second = runner.run(seed: 42, adversary: adversary, trace: true)
        #expect(first.traceDigest == second.traceDigest)
        #expect(first.steps == second.steps && first.bytesSent == second.bytesSent)
        #expect(first.outputs == second.outputs && first.scheduler == second.scheduler)
        #expect(second.trace?.isEmpty == false)
        let other = runner.run(seed: 43, adversary: adversary)
        #expect(other.traceDigest != first.traceDigest)
    }

    @Test func aFreshClusterReplaysTheSameRun() throws {
        // Keys are a function of (n, t), so a new process (here: a new runner) replays a run exactly.
        let adversary = Adversary(name: "flood", scheduler: nil, behaviour: "flood")
        let first = try SimulationCatalog.runner(for: "rbc", replicas: 4, faulty: 1).run(seed: 7, adversary: adversary)
        let second = try SimulationCatalog.runner(for: "rbc", replicas: 4, faulty: 1).run(seed: 7, adversary: adversary)
        #expect(first.traceDigest == second.traceDigest)
    }
}

