import Foundation
import SintraReplica

/// The figures of one `sintra bench` run, as text for people and JSON for scripts.
struct BenchReport: Codable {
    struct Latency: Codable {
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double
    }

    struct Replica: Codable {
        var member: Int
        /// CPU seconds (user + system) the replica process used during the measured window.
        var cpuSeconds: Double?
        /// Rounds (batches) delivered during the window.
        var batches: Int?
        /// Requests in those batches, over the batches.
        var requestsPerBatch: Double?
        /// Requests executed by the end of the run.
        var executed: UInt64?
        var faults: Int?
        /// Over the whole run: client signatures checked at submission and at execution, and requests held
        /// back unchecked at submission (not a first proposer) and of those the ones checked when overdue.
        var submissionVerifications: Int?
        var executionVerifications: Int?
        /// Ordered requests not verified at this replica because t + 1 replicas queued them.
        var attestedRequests: Int?
        var deferredRequests: Int?
        var overdueRequests: Int?
        /// Over the whole run: client requests refused `overloaded` and connections closed for flooding.
        var overloadedRefusals: Int?
        var overloadCloses: Int?
        /// Over the whole run: fast-path timers that fired in an undecided round.
        var fastPathTimeouts: Int?
    }

    var replicas: Int
    var faulty: Int
    var clients: Int
    var connectionsPerReplica: Int
    var payloadBytes: Int
    var durationSeconds: Double
    var warmupSeconds: Double
    /// Requests answered by t + 1 matching `.ok` replies inside the measured window (with `signers`: the
    /// callers' puts, several to a signed request).
    var requests: Int
    var requestsPerSecond: Double
    var latencyMilliseconds: Latency
    /// Requests that failed or timed out over the whole run (must be 0).
    var lost: Int
    var firstFailure: String?
    /// Requests the replicas refused (t + 1 for one reason, or too many for a result), over the whole run,
    /// and by reason (`RefusalReason.label`); not counted as lost: the clients were told why at once.
    var refused: Int
    var refusedByReason: [String: Int]
    /// Requests the clients sent again after retryable refusals (`RetryPolicy.default`), over the whole run.
    var retries: Int
    /// Requests in flight the clients sent again to a replica on a new connection (`ClientMultiplexer`:
    /// after the connection dropped or the replica could not be reached), over the whole run.
    var redeliveries: Int?
    /// The replicas' limit of unanswered requests per client connection, if the run set one
    /// (`--client-requests-max`).
    var clientRequestsMax: Int?
    /// Signing clients carrying the callers' puts in batches (`--signers`), if the run had them.
    var signers: Int?
    /// With `signers`: signed requests sent over the whole run, and puts per signed request on average.
    var signedRequests: Int?
    var operationsPerSignedRequest: Double?
    /// Milliseconds per atomic broadcast round at replica 1 during the window.
    var roundMilliseconds: Double?
    /// The share of replica 1's rounds in the window delivered from the leader's fast path.
    var fastPathShare: Double?
    var replicaStatistics: [Replica]
    /// CPU seconds of the bench process itself (the clients) during the window.
    var clientCPUSeconds: Double?
    /// The 1-minute load average at the end.
    var loadAverage: Double?
    /// Resident memory and data size of every replica, sampled every `BenchCommand.sampleSeconds` from the end of
    /// the warm-up.
    var resources: [ResourceSample]

    init(
        command: BenchCommand, faulty: Int, connections: Int, load: ClosedLoopLoad.Result, before: BenchSnapshot,
        after: BenchSnapshot, final: [ReplicaStatisticsFile?], samples: [ResourceSample], retries: Int,
        redeliveries: Int, signed: (requests: Int, operations: Int)?
    ) {
        self.retries = retries
        signers = command.signers > 0 ? command.signers : nil
        signedRequests = signed?.requests
        operationsPerSignedRequest = signed.flatMap { $0.requests > 0 ? Double($0.operations) / Double($0.requests) : nil }
        self.redeliveries = redeliveries
        clientRequestsMax = command.clientRequestsMax
        resources = samples
        replicas = command.replicas
        self.faulty = faulty
        clients = command.clients
        connectionsPerReplica = connections
        payloadBytes = command.payload
        durationSeconds = command.duration
        warmupSeconds = command.warmup
        let sorted = load.latenciesMicroseconds.sorted()
        requests = sorted.count
        requestsPerSecond = Double(sorted.count) / command.duration
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            // The nearest-rank percentile: the smallest sample with at least p of all samples at or below it.
            let rank = Int((Double(sorted.count) * p).rounded(.up))
            return Double(sorted[min(sorted.count, max(rank, 1)) - 1]) / 1000
        }
        latencyMilliseconds = Latency(
            p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), max: percentile(1))
        lost = load.failed
        firstFailure = load.firstFailure
        refused = load.refusals.values.reduce(0, +)
        refusedByReason = Dictionary(uniqueKeysWithValues: load.refusals.map { ($0.key.label, $0.value) })
        let seconds = Double(after.nanoseconds - before.nanoseconds) / 1e9
        replicaStatistics = (0..<command.replicas).map { offset in
            let start = before.statistics[offset], end = after.statistics[offset]
            let batches = start.flatMap { start in end.map { $0.batches - start.batches } }
            let delivered = start.flatMap { start in end.map { $0.deliveredRequests - start.deliveredRequests } }
            return Replica(
                member: offset + 1,
                cpuSeconds: before.cpuSeconds[offset].flatMap { start in after.cpuSeconds[offset].map { $0 - start } },
                batches: batches,
                requestsPerBatch: batches.flatMap { batches in
                    delivered.map { batches > 0 ? Double($0) / Double(batches) : 0 }
                },
                executed: final[offset]?.executed, faults: final[offset]?.faults,
                submissionVerifications: final[offset]?.submissionVerifications,
                executionVerifications: final[offset]?.executionVerifications,
                attestedRequests: final[offset]?.attestedRequests,
                deferredRequests: final[offset]?.deferredRequests, overdueRequests: final[offset]?.overdueRequests,
                overloadedRefusals: final[offset]?.overloadedRefusals, overloadCloses: final[offset]?.overloadCloses,
                fastPathTimeouts: final[offset]?.fastPathTimeouts)
        }
        if let batches = replicaStatistics.first?.batches, batches > 0 {
            roundMilliseconds = seconds * 1000 / Double(batches)
        }
        if let start = before.statistics.first??.fastPathRounds, let end = after.statistics.first??.fastPathRounds,
            let startAgreed = before.statistics.first??.agreementRounds, let endAgreed = after.statistics.first??.agreementRounds,
            end + endAgreed > start + startAgreed
        {
            fastPathShare = Double(end - start) / Double(end + endAgreed - start - startAgreed)
        }
        clientCPUSeconds = before.benchCPUSeconds.flatMap { start in after.benchCPUSeconds.map { $0 - start } }
        loadAverage = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .flatMap { $0.split(separator: " ").first.flatMap { Double($0) } }
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    var text: String {
        func number(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "?" }
        var retriedText = "  retried           \(retries) (requests sent again after retryable refusals)"
        if let redeliveries, redeliveries > 0 { retriedText += "; \(redeliveries) sent again on new connections" }
        let reasons: [String] = refusedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        let refusedText: String = reasons.isEmpty ? "\(refused)" : "\(refused) (" + reasons.joined(separator: ", ") + ")"
        // Pieces are built one by one with their types given: one long expression of mixed `+`, optionals and
        // closures took the type checker past its time limit in a debug build on a loaded machine.
        let lostDetail: String = firstFailure.map { " (first: \($0))" } ?? ""
        let overloadParts: [String] = replicaStatistics.map { statistics -> String in
            let refused: String = statistics.overloadedRefusals.map(String.init) ?? "?"
            let closed: String = statistics.overloadCloses.map(String.init) ?? "?"
            return "\(refused) refused, \(closed) closed"
        }
        let overloadText: String = overloadParts.joined(separator: " | ")
        // With signers a "request" of the figures is a caller's put, several of which share a signed request.
        let unit: String = signers == nil ? "requests" : "puts"
        let throughputText: String = String(
            format: "  throughput        %.0f " + unit + "/s (%d answered by t + 1 = %d matching replies in %.1f s)",
            requestsPerSecond, requests, faulty + 1, durationSeconds)
        let latencyText: String = String(
            format: "  latency           p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
            latencyMilliseconds.p50, latencyMilliseconds.p90, latencyMilliseconds.p99, latencyMilliseconds.max)
        var signedText: [String] = []
        if let signers, let signedRequests {
            let perRequest: String = number(operationsPerSignedRequest, "%.1f")
            signedText.append(
                "  signed requests   \(signedRequests) from \(signers) signing clients, \(perRequest) puts per request")
        }
        var lines: [String] = [
            "",
            throughputText,
            latencyText,
        ] + signedText + [
            "  round             \(number(roundMilliseconds, "%.1f")) ms per atomic broadcast round (replica 1), "
                + "\(number(fastPathShare.map { $0 * 100 }, "%.0f")) % from the leader's fast path",
            "  lost              \(lost)\(lostDetail)",
            "  refused           \(refusedText)",
            retriedText,
            "  overload          \(overloadText) (per replica: requests over its client limits, connections closed for flooding)",
            "  clients' CPU      \(number(clientCPUSeconds, "%.2f")) s in the window (this process)",
            "  load average      \(number(loadAverage, "%.2f"))",
            "",
            "  replica   CPU s   batches   requests/batch   executed   faults",
        ]
        for replica in replicaStatistics {
            let columns: [String] = [
                String(format: "  %7d", replica.member),
                number(replica.cpuSeconds, "%6.2f").leftPadded(6),
                (replica.batches.map(String.init) ?? "?").leftPadded(8),
                number(replica.requestsPerBatch, "%.1f").leftPadded(15),
                (replica.executed.map(String.init) ?? "?").leftPadded(9),
                (replica.faults.map(String.init) ?? "?").leftPadded(7),
            ]
            lines.append(columns.joined(separator: "  "))
        }
        if let first = resources.first, let last = resources.last {
            func megabytes(_ value: Int?) -> String { value.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "?" }
            func peak(_ values: [Int?]) -> Int? { values.compactMap { $0 }.max() }
            func span(_ values: [Int?]) -> String {
                let start: String = megabytes(values.first ?? nil)
                let end: String = megabytes(values.last ?? nil)
                return "\(start) → \(end), \(megabytes(peak(values)))"
            }
            lines.append("")
            lines.append(String(format: "  replica   resident MB (start → end, max)   data MB (start → end, max), %.0f s apart",
                                last.seconds - first.seconds))
            for offset in 0..<replicas {
                let resident: String = span(resources.map { $0.residentBytes[offset] })
                let data: String = span(resources.map { $0.dataBytes[offset] })
                let member: String = String(format: "  %7d", offset + 1)
                lines.append(member + "   " + resident.padding(toLength: 33, withPad: " ", startingAt: 0) + data)
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
