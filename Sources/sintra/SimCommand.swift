import ArgumentParser
import Foundation
import SintraSimulation

/// `sintra sim`: many seeded runs of one protocol in the deterministic simulator, under every adversary
/// (or one), with the invariants checked after each run. A violation prints the seed and the command
/// that replays that run exactly; the exit status is non-zero if there was any.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run a protocol in the deterministic simulator under adversarial schedules and Byzantine nodes.",
        discussion: """
            Runs seeds S, S+1, …, S+K−1 for each adversary. Each seed fixes the Byzantine nodes (t of \
            them), their behaviour, the scheduler, the inputs and every delivery, so a run replays exactly. \
            Adversaries: the generic behaviours silent, crash, garbage, replay and flood, the protocol's own \
            (rbc: equivocate, lie; cbc, vcbc: equivocate, forge-certificate; abba: equivocate, vote-both, \
            bad-coin, forge-certificate; mvba: invalid, equivocate, withhold, bad-vote; abc, kv: \
            invalid-vector, oversized, withhold, equivocate, replay-round, honest), each with a scheduler \
            chosen by the seed, and the schedulers starve and partition with behaviours chosen by the seed, \
            and steer: for abba split and steer against the coin, with Byzantine nodes voting both ways; for \
            abc and kv a different honest node starved in every round. For abc and kv also restart (k ≤ t \
            honest nodes crash, losing all but what a replica persists, and restart from it, with t − k \
            Byzantine nodes) and restart-many (t Byzantine nodes and more than t honest ones crashing at \
            about the same time: safety is checked, and a missing delivery is reported as a stall). \
            Restarted replicas replay their journal (durability stage 2); --no-journal simulates stage 1, \
            silent up to the send horizon, under which restart-many may stall. Checked after each run: agreement, \
            validity, integrity, totality (rbc), termination after the network heals, bounded buffers, and \
            that no honest node accuses an honest one; for abc and kv batch by batch: total order, no \
            request twice, no request lost that t + 1 honest replicas got, and (kv) replies, state digests \
            and client results against a sequential execution. Keys depend on n and t only, so a seed \
            replays anywhere.
            """)

    @Option(name: .long, help: "Protocol: \(SimulationCatalog.protocolNames.joined(separator: ", ")).")
    var `protocol`: String = "rbc"

    @Option(name: .long, help: "Number of replicas n.")
    var replicas: Int = 4

    @Option(name: .long, help: "Number of Byzantine replicas t (default: the largest t with n ≥ 3t + 1).")
    var faulty: Int?

    @Option(name: .long, help: "Number of seeds K per adversary.")
    var seeds: Int = 100

    @Option(name: .long, help: "First seed S.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "An adversary name, or all.")
    var adversary: String = "all"

    @Option(name: .long, help: "abc: requests per run; kv: requests per honest client (default: drawn from the seed).")
    var requests: Int?

    @Option(name: .long, help: "abc, kv: the cap on requests per queue, the batch size (default: drawn from the seed).")
    var batch: Int?

    @Flag(
        name: .customLong("no-journal"),
        help: "abc, kv: replicas keep no journal and restart silent up to their send horizon (durability stage 1), to compare.")
    var noJournal = false

    @Flag(
        name: .long,
        help: "abc, kv: every round goes through agreement, without the leader's fast path, to compare.")
    var pessimistic = false

    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false

    @Flag(name: .long, help: "Print every delivery of every run (use with --seeds 1).")
    var trace = false

    func validate() throws {
        guard (4...64).contains(replicas) else { throw ValidationError("--replicas must be in 4…64") }
        let t = faulty ?? (replicas - 1) / 3
        guard t >= 0, replicas > 3 * t else {
            throw ValidationError("--faulty \(t) needs n ≥ 3t + 1, i.e. at least \(3 * t + 1) replicas")
        }
        guard (1...1_000_000).contains(seeds) else { throw ValidationError("--seeds must be in 1…1000000") }
        guard !trace || seeds <= 10 else { throw ValidationError("--trace prints every delivery: use --seeds ≤ 10") }
        guard (requests ?? 1) >= 1, (batch ?? 1) >= 1 else {
            throw ValidationError("--requests and --batch must be ≥ 1")
        }
    }

    func run() throws {
        let runner: SimulationRunner
        do {
            runner = try SimulationCatalog.runner(
                for: `protocol`, replicas: replicas, faulty: faulty ?? (replicas - 1) / 3,
                options: SimulationOptions(
                    requests: requests, batchCountMax: batch, journaling: !noJournal, optimistic: !pessimistic))
        } catch let failure as SimulationCatalog.Failure {
            throw ValidationError(failure.description)
        }
        let adversaries: [Adversary]
        if adversary == "all" {
            adversaries = runner.adversaries
        } else if let chosen = runner.adversary(named: adversary) {
            adversaries = [chosen]
        } else {
            throw ValidationError(
                "unknown adversary \(adversary) for \(`protocol`); choose all or one of "
                    + runner.adversaries.map(\.name).joined(separator: ", "))
        }
        let started = DispatchTime.now()
        let trace = self.trace
        let summary: SimulationSummary
        if trace {
            var results = [String: [RunResult]]()
            for adversary in adversaries {
                for offset in 0..<seeds {
                    let result = runner.run(seed: seed &+ UInt64(offset), adversary: adversary, trace: true)
                    print("# \(result.protocolName) \(adversary.name) seed \(result.seed): \(result.scheduler); "
                        + "Byzantine \(result.byzantine) \(result.behaviours)")
                    print(result.trace!.joined(separator: "\n"))
                    results[adversary.name, default: []].append(result)
                }
            }
            summary = SimulationSummary(
                protocolName: runner.protocolName, replicas: replicas, faulty: faulty ?? (replicas - 1) / 3,
                firstSeed: seed, seeds: seeds,
                adversaries: adversaries.map { AdversarySummary(adversary: $0.name, results: results[$0.name]!) })
        } else {
            summary = runner.runMany(firstSeed: seed, seeds: seeds, adversaries: adversaries)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(summary.text)
            print(String(format: "%d runs in %.2f s (%.1f ms per run)", summary.runs, seconds,
                         1000 * seconds / Double(max(summary.runs, 1))))
        }
        if !summary.violations.isEmpty { throw ExitCode.failure }
    }
}
