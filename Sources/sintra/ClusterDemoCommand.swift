import ArgumentParser
import Dispatch
import Foundation
import SintraClient
import SintraCrypto
import SintraReplica

/// `sintra demo`: a SintraKV cluster of replica processes on loopback, clients writing to it, and replicas
/// killed half-way while the service goes on, then restarted from their data folders to catch up.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a local SintraKV cluster of replica processes under load, kill replicas half-way and restart them.")

    @Option(name: .long, help: "Number of replicas n (t is the largest value with n ≥ 3t + 1).")
    var replicas: Int = 4

    @Option(name: .long, help: "Seconds of load.")
    var duration: Double = 10

    @Option(name: .long, help: "Concurrent closed-loop clients.")
    var clients: Int = 8

    @Option(name: .long, help: "Bytes of each value written.")
    var payload: Int = 64

    @Option(name: .long, help: "Replicas to kill half-way, comma separated (default: the last one; at most t).")
    var kill: String?

    @Option(name: .long, help: "Seconds after the kill to restart the killed replicas from their data folders.")
    var restartDelay: Double = 1.5

    @Flag(name: .long, help: "Run the replicas without durable state (to measure what durability costs; no restart).")
    var inMemory = false

    var killed: [Int] { kill.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [replicas] }

    func validate() throws {
        guard (4...16).contains(replicas) else { throw ValidationError("--replicas must be in 4…16") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        guard restartDelay >= 0, restartDelay <= 3600 else { throw ValidationError("--restart-delay must be in [0, 3600]") }
        guard (1...256).contains(clients) else { throw ValidationError("--clients must be in 1…256") }
        guard (0...KeyValueStore.valueBytesMax).contains(payload) else { throw ValidationError("--payload too large") }
        let faulty = (replicas - 1) / 3
        guard killed.count <= faulty, killed.allSatisfy({ (1...replicas).contains($0) }) else {
            throw ValidationError("--kill must name at most t = \(faulty) replicas in 1…\(replicas)")
        }
    }

    func run() async throws {
        let local = try LocalCluster(replicas: replicas, label: "demo", inMemory: inMemory)
        defer { local.stop() }
        let (faulty, cluster) = (local.faulty, local.configuration)
        print("Sintra demo: n = \(replicas) replicas on 127.0.0.1:\(local.basePort)…, tolerating t = \(faulty) Byzantine.")
        print("Keys in \(local.folder); replica processes log to replica-I.log there.\n")
        try await local.waitUntilServing()
        print("\(replicas) replicas running; \(clients) clients writing \(payload)-byte values for \(duration) s.\n")

        let recorder = LatencyRecorder()
        let start = DispatchTime.now()
        let deadline = start.uptimeNanoseconds + UInt64(duration * 1e9)
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for number in 0..<clients {
                    group.addTask { await runClient(number, cluster: cluster, until: deadline, recorder: recorder) }
                }
            }
        }
        var killedAt: Double?
        var restarted = false
        let names = (killed.count == 1 ? "replica " : "replicas ") + killed.map(String.init).joined(separator: ", ")
        while DispatchTime.now().uptimeNanoseconds < deadline {
            try? await Task.sleep(for: .milliseconds(500))
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            if killedAt == nil, elapsed >= duration / 2 {
                killedAt = elapsed
                for index in killed { local.kill(index) }
                print("\n  ✂ killed \(names) (SIGKILL) at " + String(format: "%.1f s", elapsed)
                    + "; the others go on.")
            }
            // Restarted soon after, so that it is fewer rounds behind than the others remember for catch-up
            // (state transfer from a checkpoint, for replicas further behind, is not built yet).
            if !inMemory, !restarted, let killedAt, elapsed >= killedAt + min(restartDelay, duration / 4) {
                restarted = true
                for index in killed { try local.restart(index) }
                print("\n  ↻ restarted \(names) from disk (replica-I.data) at " + String(format: "%.1f s", elapsed)
                    + "; catching up.")
            }
            let snapshot = await recorder.snapshot()
            let line = String(
                format: "  %5.1f s  %7d requests  %7.0f req/s  p50 %6.1f ms  p99 %6.1f ms  failed %d",
                elapsed, snapshot.count, Double(snapshot.count) / max(elapsed, 0.001), snapshot.p50, snapshot.p99,
                snapshot.failed)
            print("\r" + line, terminator: "")
            fflush(nil)
        }
        await load.value
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let summary = await recorder.snapshot()
        print("\n\nSummary")
        print("  requests answered   \(summary.count) (each by t + 1 = \(faulty + 1) matching replies)")
        print(String(format: "  throughput          %.0f requests/s", Double(summary.count) / elapsed))
        print(String(format: "  latency             p50 %.1f ms, p99 %.1f ms", summary.p50, summary.p99))
        print("  replicas killed     \(killed.count) of \(replicas)" + (restarted ? ", restarted" : ""))
        print("  requests lost       \(summary.failed)")
        let refusals = await recorder.refusals
        print("  requests refused    \(refusals.values.reduce(0, +))"
            + (refusals.isEmpty
                ? "" : " (" + refusals.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.label) \($0.value)" }
                    .joined(separator: ", ") + "; the clients were told why)"))
        print("  requests retried    \(await recorder.retries) (sent again after a retryable refusal)")
        if restarted { await reportRejoin(local) }
    }

    /// Waits up to 15 s for every restarted replica to reach the round of the first replica that stayed up
    /// (read from the statistics files the replicas write every half second), and says how it went.
    private func reportRejoin(_ local: LocalCluster) async {
        guard let witness = (1...replicas).first(where: { !killed.contains($0) }) else { return }
        let deadline = Date().addingTimeInterval(15)
        var behind: [(replica: Int, round: UInt64, target: UInt64)] = []
        repeat {
            try? await Task.sleep(for: .milliseconds(500))
            guard let target = local.statistics(witness)?.round else { continue }
            behind = killed.compactMap { index in
                let round = local.statistics(index)?.round ?? 0
                return round >= target ? nil : (index, round, target)
            }
        } while !behind.isEmpty && Date() < deadline
        if behind.isEmpty {
            print("  rejoined            \(killed.count == 1 ? "replica" : "replicas") "
                + "\(killed.map(String.init).joined(separator: ", ")) back at the round of replica \(witness)")
        } else {
            for entry in behind {
                print("  not caught up       replica \(entry.replica) at round \(entry.round), replica \(witness) at "
                    + "\(entry.target) (see replica-\(entry.replica).log)")
            }
        }
    }

    private func runClient(_ number: Int, cluster: ClusterConfiguration, until deadline: UInt64, recorder: LatencyRecorder)
        async
    {
        guard let client = try? SintraClient(configuration: cluster, timeoutSeconds: 10) else { return }
        let value = [UInt8](repeating: UInt8(truncatingIfNeeded: number), count: payload)
        var sequence = 0
        while DispatchTime.now().uptimeNanoseconds < deadline {
            sequence += 1
            let began = DispatchTime.now().uptimeNanoseconds
            let outcome: Result<KeyValueStore.Result, Error>
            do {
                outcome = .success(
                    try await client.execute(.put(key: Array("client-\(number)-\(sequence % 100)".utf8), value: value)))
            } catch {
                outcome = .failure(error)
            }
            let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6
            if case .failure(SintraClient.Failure.refused(let reason)) = outcome {
                await recorder.refused(reason)
            } else {
                await recorder.record(milliseconds, ok: (try? outcome.get()) == .ok)
            }
        }
        await recorder.retried(await client.retryCount)
        await client.close()
    }
}

/// Latencies of answered requests, the count of failed ones, and refusals by reason.
actor LatencyRecorder {
    private var latencies = [Double]()
    private var failed = 0
    private(set) var refusals: [RefusalReason: Int] = [:]
    /// Requests the clients sent again after retryable refusals (`SintraClient.retryCount`).
    private(set) var retries = 0

    func retried(_ count: Int) {
        retries += count
    }

    func record(_ milliseconds: Double, ok: Bool) {
        if ok { latencies.append(milliseconds) } else { failed += 1 }
    }

    /// A request the replicas refused (`SintraClient.Failure.refused`): answered with a reason, not lost.
    func refused(_ reason: RefusalReason) {
        refusals[reason, default: 0] += 1
    }

    func snapshot() -> (count: Int, p50: Double, p99: Double, failed: Int) {
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        return (sorted.count, percentile(0.5), percentile(0.99), failed)
    }
}
