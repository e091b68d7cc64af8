import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// Seeded runs of atomic broadcast against every adversary, with t Byzantine replicas: batches agree round
/// by round, total order, integrity, validity and no lost request after every run.
@Suite struct AtomicBroadcastSimulationTests {
    /// (n, t, first seed, seeds per adversary): 238 runs. Two requests per run keep runs to one or two
    /// rounds (about 140 ms of CPU at n = 4 in a debug build, 600 ms at n = 7).
    static let cases: [(Int, Int, UInt64, Int)] = [(4, 1, 50_000, 8), (4, 1, 50_008, 8), (7, 2, 57_000, 1)]

    @Test(arguments: cases)
    func everyAdversaryLeavesTheInvariantsIntact(replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(
            for: "abc", replicas: replicas, faulty: faulty, options: SimulationOptions(requests: 2))
        #expect(runner.adversaries.map(\.name) == [
            "silent", "crash", "garbage", "replay", "flood", "invalid-vector", "oversized", "withhold", "equivocate",
            "replay-round", "forge-lock", "honest", "starve", "partition", "steer", "restart", "restart-many",
        ])
        // Crash-restart runs have their own tests (`RestartSimulationTests`).
        let adversaries = runner.adversaries.filter { $0.restarts == nil }
        let summary = runner.runMany(firstSeed: firstSeed, seeds: seeds, adversaries: adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        for adversary in summary.adversaries {
            let order = try #require(adversary.order)
            #expect(order.requestsDelivered >= order.requestsRequired, "\(adversary.adversary)")
            #expect(order.batchesMax >= 1)
        }
        guard seeds >= 8 else { return }
        let faults = Dictionary(uniqueKeysWithValues: summary.adversaries.map { ($0.adversary, $0.faults) })
        // Oversized queues and queues signed for another round are rejected with evidence.
        #expect(faults["oversized"]!.contains { $0.kind == "invalidProof" })
        #expect(faults["replay-round"]!.contains { $0.kind == "invalidProof" })
        #expect(faults["replay-round"]!.contains { $0.kind == "notAllowed" })
        #expect(faults["garbage"]!.contains { $0.kind == "malformed" })
        // A stop whose lock certificate is forged is rejected with evidence.
        #expect(faults["forge-lock"]!.contains { $0.kind == "invalidProof" })
    }

    /// Liveness under a scheduler that starves a different honest replica in every round (its messages of
    /// that round wait until nothing else is pending; Byzantine replicas follow the protocol, so the
    /// others can run ahead). Every request submitted to the honest replicas is delivered by all of them;
    /// the starved replicas pay in latency.
    @Test(arguments: [(4, 1, 12), (7, 2, 2)])
    func rotatingStarvationDeliversEveryRequest(replicas: Int, faulty: Int, seeds: Int) throws {
        let simulation = Simulation(
            adapter: AtomicBroadcastAdapter(requestCount: 6, batchCountMax: 2),
            cluster: try SimulationCluster.deal(replicas: replicas, faulty: faulty))
        let starving = Adversary(name: "honest", scheduler: .steer, behaviour: "honest")
        let random = Adversary(name: "honest", scheduler: .random, behaviour: "honest")
        let first = 52_000 + 100 * UInt64(replicas)
        let starved = simulation.runMany(firstSeed: first, seeds: seeds, adversaries: [starving])
        let unstarved = simulation.runMany(firstSeed: first, seeds: seeds, adversaries: [random])
        #expect(starved.violations.isEmpty, "\(starved.text)")
        let order = try #require(starved.adversaries[0].order)
        let baseline = try #require(unstarved.adversaries[0].order)
        #expect(order.requestsDelivered >= order.requestsRequired)
        #expect(order.batchesMax >= 3, "several rounds, so several victims")
        #expect(order.latencyStepsMean > baseline.latencyStepsMean, "starvation delays delivery")
        print(
            "rotating starvation, n = \(replicas): \(order.requestsDelivered) requests in \(starved.runs) runs, "
                + "batches mean \(order.batchesMean) max \(order.batchesMax), latency (steps) mean "
                + "\(Int(order.latencyStepsMean)) max \(order.latencyStepsMax); random scheduler: mean "
                + "\(Int(baseline.latencyStepsMean)) max \(baseline.latencyStepsMax)")
    }

    @Test func theStarvedReplicaRotatesWithTheRound() throws {
        let cluster = try SimulationCluster.deal(replicas: 7, faulty: 2)
        let context = SimulationContext(
            configuration: cluster.configuration, keys: cluster.keys, path: InstancePath("sim"),
            limits: WireLimits(memberCount: 7), byzantine: [2, 5], honest: [1, 3, 4, 6, 7], seed: 3)
        let scheduler = RotatingStarvation(context: context)
        let victims = (1...5).map { scheduler.victim(of: UInt64($0)) }
        #expect(Set(victims) == Set(context.honest))
        let victim = scheduler.victim(of: 2)
        let queue = AtomicBroadcast.Message.catchUpRequest(round: 2)
        #expect(scheduler.rank(queue, from: 1, to: victim) > scheduler.rank(queue, from: 1, to: victims[0]))
        #expect(scheduler.rank(.catchUpRequest(round: 3), from: 1, to: victim) == 0)
    }

    /// The same seed replays the same run, for an ordering protocol too.
    @Test func sameSeedSameTrace() throws {
        let runner = try SimulationCatalog.runner(for: "abc", replicas: 4, faulty: 1)
        let adversary = try #require(runner.adversary(named: "equivocate"))
        let first = runner.run(seed: 77, adversary: adversary)
        let second = runner.run(seed: 77, adversary: adversary)
        #expect(first.traceDigest == second.traceDigest)
        #expect(first.order?.latencySteps == second.order?.latencySteps)
    }
}
