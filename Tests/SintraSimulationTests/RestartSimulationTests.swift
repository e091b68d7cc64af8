import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// Honest nodes that crash and restart from what they persisted (`restart`, `restart-many`): every
/// safety check holds in every run; within the bound (at most t nodes faulty or restarting) every
/// liveness check holds too; beyond it, runs may stall, and a stall is told apart from a violation.
@Suite struct RestartSimulationTests {
    /// (protocol, n, t, first seed, seeds) for `restart`.
    static let withinBound: [(String, Int, Int, UInt64, Int)] = [
        ("abc", 4, 1, 90_000, 100), ("abc", 7, 2, 97_000, 8), ("kv", 4, 1, 91_000, 50), ("kv", 7, 2, 98_000, 4),
    ]

    @Test(arguments: withinBound)
    func restartsWithinTheBoundKeepEveryInvariant(
        name: String, replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int
    ) throws {
        let runner = try SimulationCatalog.runner(
            for: name, replicas: replicas, faulty: faulty, options: SimulationOptions(requests: name == "kv" ? 2 : nil))
        let adversary = try #require(runner.adversary(named: "restart"))
        let summary = runner.runMany(firstSeed: firstSeed, seeds: seeds, adversaries: [adversary])
        #expect(summary.violations.isEmpty, "\(summary.text)")
        let result = try #require(summary.adversaries.first)
        let order = try #require(result.order)
        #expect(order.requestsDelivered >= order.requestsRequired, "\(summary.text)")
        // Every run has at least one crash, and it is followed by a restart.
        #expect(result.restarts >= seeds, "\(summary.text)")
        #expect(result.stalledRuns == 0)
    }

    /// More than t honest nodes crash at about the same time (with t Byzantine ones): no safety violation,
    /// and with the journal (stage 2) no stall either. These seed ranges hold runs that stalled without
    /// the journal (stage 1) and, with the journal but before peers sent a restarted party their messages of
    /// the rounds it asks for again, abc seeds 92006, 92021, 92043, 92045 and kv 93003, 93007, 93019, 93025;
    /// and abc at n = 7 seed 100001 (7 of 40 such runs from 100000 stalled with the journal alone).
    @Test(arguments: [("abc", 4, 1, UInt64(92_000), 60), ("kv", 4, 1, UInt64(93_000), 30), ("abc", 7, 2, 100_001, 1)])
    func restartsBeyondTheBoundAreSafeAndLive(name: String, replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(for: name, replicas: replicas, faulty: faulty)
        let adversary = try #require(runner.adversary(named: "restart-many"))
        let summary = runner.runMany(firstSeed: firstSeed, seeds: seeds, adversaries: [adversary])
        #expect(summary.violations.isEmpty, "\(summary.text)")
        let result = try #require(summary.adversaries.first)
        #expect(result.restarts >= 2 * seeds, "\(summary.text)")
        #expect(result.stalledRuns == 0, "\(summary.text)")
    }

    /// A run with restarts replays exactly from its seed, and its report says what crashed when.
    @Test func aRunWithRestartsReplays() throws {
        let runner = try SimulationCatalog.runner(for: "abc", replicas: 4, faulty: 1)
        let adversary = try #require(runner.adversary(named: "restart"))
        let first = runner.run(seed: 94_001, adversary: adversary)
        let second = runner.run(seed: 94_001, adversary: adversary)
        #expect(first.traceDigest == second.traceDigest)
        #expect(first.restarts == second.restarts)
        #expect(!first.crashers.isEmpty)
        #expect(first.byzantine.count + first.crashers.count <= 1)
        #expect(first.restarts.contains { $0.contains("crashed") } && first.restarts.contains { $0.contains("restarted") })
    }

    /// Crashes inside a call and between calls, and restarts that replay a journal (stage 2, never silent)
    /// all occur in the `restart` runs (so the tests above exercise them); without the journal
    /// (`--no-journal`, stage 1) restarts resume silently above the last round on disk.
    @Test func theRunsCoverEveryKindOfCrash() throws {
        let runner = try SimulationCatalog.runner(for: "abc", replicas: 4, faulty: 1)
        let adversary = try #require(runner.adversary(named: "restart"))
        let lines = (0..<20).flatMap { runner.run(seed: 95_000 + UInt64($0), adversary: adversary).restarts }
        #expect(lines.contains { $0.contains("inside a call") })
        #expect(lines.contains { $0.contains("between calls") })
        let restarts = lines.filter { $0.contains("restarted") }
        #expect(restarts.allSatisfy { $0.contains("silent through 0,") })
        #expect(restarts.contains { $0.contains("replayed") && !$0.contains("replayed 0 ") })
        let stageOne = try SimulationCatalog.runner(
            for: "abc", replicas: 4, faulty: 1, options: SimulationOptions(journaling: false))
        let silent = (0..<20).flatMap { stageOne.run(seed: 95_000 + UInt64($0), adversary: adversary).restarts }
        #expect(silent.contains { $0.contains("silent through") && !$0.contains("silent through 0") })
        #expect(!silent.contains { $0.contains("replayed") })
    }

    /// The store keeps what `ReplicaNode` keeps: batches in round order, the highest binding round sent,
    /// one snapshot, and the log pruned below it by the deduplication memory.
    @Test func theSimulatedStoreFollowsTheReplicaRules() {
        var store = SimulatedStore(keepRounds: 2)
        var effects = Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>()
        effects.broadcast(.catchUpRequest(round: 9))
        store.commit(effects)
        #expect(store.sendHorizon == 0 && store.commitCount == 0)  // catch-up binds nothing: no commit
        for round in UInt64(1)...5 {
            var call = Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>()
            call.output(AtomicBroadcast.Batch(round: round, requests: [[UInt8(round)]]))
            call.broadcast(.queue(round: round + 1, .init(member: 1, requests: [], signature: [])))
            store.commit(call)
            store.snapshotIfDue(after: round, interval: 3) { [UInt8(round)] }
        }
        #expect(store.sendHorizon == 6)
        #expect(store.snapshot == SimulatedStore.Snapshot(round: 3, state: [3]))
        #expect(store.log.map(\.round) == [2, 3, 4, 5])
        #expect(store.logAfterSnapshot.map(\.round) == [4, 5])
        #expect(store.resumption.nextRound == 6 && store.resumption.sendHorizon == 6)
        #expect(store.contains([4]) && !store.contains([1]))
    }

    /// With journaling the store commits each call's journal entries with its effects, keeps only the
    /// rounds a resumed instance rebuilds (from last round + 1 − window − 1 on), and resumes with the
    /// journal and no silent round; a call with entries but nothing else is a commit of its own.
    @Test func theSimulatedStoreKeepsTheJournalOfTheRoundsInstancesRebuild() {
        var store = SimulatedStore(keepRounds: 64, journaling: true, futureRoundWindow: 1)
        func entry(_ round: UInt64) -> AtomicBroadcast.JournalEntry { .proposal(round: round, value: [UInt8(round)]) }
        store.commit(Effects(), journal: [entry(1), entry(2)])
        #expect(store.commitCount == 1 && store.journal == [entry(1), entry(2)])
        for round in UInt64(1)...4 {
            var call = Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>()
            call.output(AtomicBroadcast.Batch(round: round, requests: []))
            call.broadcast(.queue(round: round + 1, .init(member: 1, requests: [], signature: [])))
            store.commit(call, journal: [entry(round + 2)])
        }
        // Last round 4: a resumed instance starts at 5 and rebuilds rounds from 5 − 1 − 1 = 3 on.
        #expect(store.journal == [entry(3), entry(4), entry(5), entry(6)])
        #expect(store.journalCountMax == 4)
        let resumption = store.resumption
        #expect(resumption.nextRound == 5 && resumption.sendHorizon == 0 && resumption.journal == store.journal)
        #expect(store.sendHorizon == 5)
        // Without journaling entries are not kept and the horizon is what a restart honours.
        var stageOne = SimulatedStore(keepRounds: 64)
        stageOne.commit(Effects(), journal: [entry(1)])
        #expect(stageOne.commitCount == 0 && stageOne.journal.isEmpty)
    }
}
