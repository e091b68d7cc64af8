import SintraCore

/// Aggregates of many runs of one protocol under one adversary.
public struct AdversarySummary: Sendable, Codable {
    public let adversary: String
    public let runs: Int
    public let violations: [Violation]
    /// Deliveries per run.
    public let stepsMean: Double
    public let stepsMax: Int
    /// Messages and bytes sent per honest node per run.
    public let honestMessagesSentMean: Double
    public let honestMessagesSentMax: Int
    public let honestBytesSentMean: Double
    public let honestBytesSentMax: Int
    /// Messages sent per Byzantine node per run.
    public let byzantineMessagesSentMean: Double
    /// The most messages an honest instance held for later at once, over all runs.
    public let bufferedMessagesMax: Int
    /// Runs in which every honest node output.
    public let runsWithAllHonestOutputs: Int
    /// Binary agreement: honest decisions per decision round, as (round, count) in round order.
    public let decisionRounds: [RoundCount]
    /// Faults reported by honest nodes, summed over runs, sorted by kind.
    public let faults: [RunResult.FaultCount]
    /// Ordering protocols: requests delivered, rounds, latency and costs per request.
    public let order: OrderSummary?
    /// Crashes and restarts of honest nodes over all runs (the `restart` adversaries).
    public let restarts: Int
    /// Runs with more than t nodes restarting (`restart-many`) that stalled, and their first findings.
    public let stalledRuns: Int
    public let stalls: [String]

    public struct RoundCount: Sendable, Codable, Hashable {
        public let round: Int
        public let count: Int
    }

    public var roundsMean: Double? {
        let total = decisionRounds.reduce(0) { $0 + $1.count }
        guard total > 0 else { return nil }
        return Double(decisionRounds.reduce(0) { $0 + $1.round * $1.count }) / Double(total)
    }

    public var roundsMax: Int? { decisionRounds.last?.round }

    /// Folds runs of one adversary.
    public init(adversary: String, results: [RunResult]) {
        self.adversary = adversary
        runs = results.count
        violations = results.flatMap(\.violations)
        func mean(_ values: [Int]) -> Double { values.isEmpty ? 0 : Double(values.reduce(0, +)) / Double(values.count) }
        stepsMean = mean(results.map(\.steps))
        stepsMax = results.map(\.steps).max() ?? 0
        let honestSent = results.flatMap { result in
            (1...result.replicas).filter { !result.byzantine.contains($0) }.map { result.messagesSent[$0 - 1] }
        }
        let honestBytes = results.flatMap { result in
            (1...result.replicas).filter { !result.byzantine.contains($0) }.map { result.bytesSent[$0 - 1] }
        }
        honestMessagesSentMean = mean(honestSent)
        honestMessagesSentMax = honestSent.max() ?? 0
        honestBytesSentMean = mean(honestBytes)
        honestBytesSentMax = honestBytes.max() ?? 0
        byzantineMessagesSentMean = mean(results.flatMap { result in result.byzantine.map { result.messagesSent[$0 - 1] } })
        bufferedMessagesMax = results.map(\.bufferedMessagesMax).max() ?? 0
        runsWithAllHonestOutputs = results.filter(\.allHonestOutput).count
        var rounds = [Int: Int]()
        for round in results.flatMap(\.decisionRounds) { rounds[round, default: 0] += 1 }
        decisionRounds = rounds.keys.sorted().map { RoundCount(round: $0, count: rounds[$0]!) }
        var faults = [String: Int]()
        for count in results.flatMap(\.faultCounts) { faults[count.kind, default: 0] += count.count }
        self.faults = faults.keys.sorted().map { RunResult.FaultCount(kind: $0, count: faults[$0]!) }
        order = OrderSummary(results)
        restarts = results.reduce(0) { $0 + $1.restarts.filter { $0.contains("restarted") }.count }
        let stalled = results.filter { !$0.stalls.isEmpty }
        stalledRuns = stalled.count
        stalls = stalled.prefix(5).map { "seed \($0.seed): \($0.stalls[0]) [replay: \($0.replay)]" }
    }
}

/// The result of `sintra sim`: one summary per adversary.
public struct SimulationSummary: Sendable, Codable {
    public let protocolName: String
    public let replicas: Int
    public let faulty: Int
    public let firstSeed: UInt64
    public let seeds: Int
    public let adversaries: [AdversarySummary]

    public var runs: Int { adversaries.reduce(0) { $0 + $1.runs } }
    public var violations: [Violation] { adversaries.flatMap(\.violations) }

    public init(
        protocolName: String, replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int, adversaries: [AdversarySummary]
    ) {
        self.protocolName = protocolName
        self.replicas = replicas
        self.faulty = faulty
        self.firstSeed = firstSeed
        self.seeds = seeds
        self.adversaries = adversaries
    }

    /// A human-readable report.
    public var text: String {
        var lines = [
            "sintra sim: \(protocolName), n = \(replicas), t = \(faulty), seeds \(firstSeed)…"
                + "\(firstSeed &+ UInt64(max(seeds, 1) - 1)), \(runs) runs, \(violations.count) violations"
        ]
        for summary in adversaries {
            var line = "  \(summary.adversary.padding(toLength: 11, withPad: " ", startingAt: 0)) "
                + "runs \(summary.runs), all honest output in \(summary.runsWithAllHonestOutputs); "
                + "steps mean \(format(summary.stepsMean)) max \(summary.stepsMax); "
                + "per honest node: msgs mean \(format(summary.honestMessagesSentMean)) "
                + "max \(summary.honestMessagesSentMax), bytes mean \(format(summary.honestBytesSentMean)) "
                + "max \(summary.honestBytesSentMax); per Byzantine node: msgs mean "
                + format(summary.byzantineMessagesSentMean)
            if summary.bufferedMessagesMax > 0 { line += "; buffered at most \(summary.bufferedMessagesMax)" }
            if let mean = summary.roundsMean, let maximum = summary.roundsMax {
                line += "; rounds to decide (per honest node) mean \(format(mean)) max \(maximum) ("
                    + summary.decisionRounds.map { "r\($0.round): \($0.count)" }.joined(separator: ", ") + ")"
            }
            lines.append(line)
            if let order = summary.order { lines.append("              " + order.text) }
            if summary.restarts > 0 {
                lines.append(
                    "              restarts of honest nodes \(summary.restarts); stalled runs \(summary.stalledRuns)"
                        + (summary.stalledRuns > 0 ? " (live beyond t restarting only with the journal, stage 2)" : ""))
                for stall in summary.stalls { lines.append("    stall \(stall)") }
            }
            if !summary.faults.isEmpty {
                lines.append(
                    "              faults reported: "
                        + summary.faults.map { "\($0.kind) \($0.count)" }.joined(separator: ", "))
            }
            for violation in summary.violations { lines.append("    VIOLATION \(violation)") }
        }
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double) -> String {
        let scaled = (value * 10).rounded() / 10
        return scaled == scaled.rounded() ? String(Int(scaled)) : String(scaled)
    }
}

extension Simulation {
    /// Runs seeds `firstSeed`, `firstSeed + 1`, … for each adversary, in order.
    public func runMany(
        firstSeed: UInt64, seeds: Int, adversaries: [Adversary], progress: ((RunResult) -> Void)? = nil
    ) -> SimulationSummary {
        let summaries = adversaries.map { adversary in
            let results = (0..<seeds).map { offset in
                let result = run(seed: firstSeed &+ UInt64(offset), adversary: adversary)
                progress?(result)
                return result
            }
            return AdversarySummary(adversary: adversary.name, results: results)
        }
        return SimulationSummary(
            protocolName: adapter.name, replicas: cluster.configuration.replicas,
            faulty: cluster.configuration.faulty, firstSeed: firstSeed, seeds: seeds, adversaries: summaries)
    }
}
