import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SintraClient
import SintraCore
import SintraReplica
import SintraServer

/// `sintra bench`: a closed-loop load of many clients against a local cluster of replica processes, with
/// throughput, latency percentiles, batch sizes and CPU per replica as text or JSON.
///
/// The clients are real clients (`ClientMultiplexer`): each has its own identifier and sequence numbers,
/// sends every request to every replica over TLS and counts it answered only on t + 1 matching replies. They
/// share one connection per replica per `ClientMultiplexer.slotsMax` clients, and one event loop thread.
/// With `--signers K` the clients are callers of K signing clients instead (`OperationBatcher`): each request
/// carries the puts that were waiting when its signer became free, and throughput counts puts.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a local SintraKV cluster of replica processes under a closed-loop load of many clients.")

    @Option(name: .long, help: "Number of replicas n (t is the largest value with n ≥ 3t + 1).")
    var replicas: Int = 4

    @Option(name: .long, help: "Concurrent closed-loop clients (one request in flight each).")
    var clients: Int = 256

    @Option(name: .long, help: "Seconds of measured load, after the warm-up.")
    var duration: Double = 10

    @Option(name: .long, help: "Seconds of load before measuring.")
    var warmup: Double = 2

    @Option(name: .long, help: "Bytes of each value written (every request is a put).")
    var payload: Int = 64

    @Option(name: .long, help: "Seconds a request may wait for t + 1 matching replies before it counts as lost.")
    var timeout: Double = 30

    @Flag(name: .long, help: "Run the replicas without durable state (to measure what durability costs).")
    var inMemory = false

    @Option(
        name: .long,
        help: """
            Requests one client connection may have unanswered at a replica (sintra replica --client-requests-max); \
            below the clients per connection, the excess is refused 'overloaded' and retried (to measure overload).
            """)
    var clientRequestsMax: Int?

    @Option(
        name: .long,
        help: "Rounds between the replicas' checkpoints (sintra replica --snapshot-interval; to measure their cost).")
    var snapshotInterval: UInt64?

    @Option(
        name: .long,
        help: "Write every N-th checkpoint into the replicas' stores (sintra replica --snapshot-write-every).")
    var snapshotWriteEvery: UInt64?

    @Option(
        name: .long,
        help: "Rounds of ordered batches the replicas keep for lagging peers (sintra replica --catch-up-memory).")
    var catchUpMemory: UInt64?

    @Option(
        name: .long,
        help: """
            Sign requests as this many clients, each carrying the puts of many of the --clients callers \
            (client-side batching: one signature per request, not per put); 0: every client signs its own puts.
            """)
    var signers: Int = 0

    @Flag(name: .long, help: "Print the result as JSON instead of text.")
    var json = false

    static let clientsMax = 20_000
    /// Seconds between samples of the replicas' resident memory and data size.
    static let sampleSeconds = 10.0

    func validate() throws {
        guard (4...16).contains(replicas) else { throw ValidationError("--replicas must be in 4…16") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        guard warmup >= 0, warmup <= 600 else { throw ValidationError("--warmup must be in [0, 600]") }
        guard (1...Self.clientsMax).contains(clients) else {
            throw ValidationError("--clients must be in 1…\(Self.clientsMax)")
        }
        guard (0...KeyValueStore.valueBytesMax).contains(payload) else { throw ValidationError("--payload too large") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard (clientRequestsMax ?? 1) >= 1 else { throw ValidationError("--client-requests-max must be positive") }
        guard (0...clients).contains(signers) else { throw ValidationError("--signers must be in 0…--clients") }
        guard (snapshotInterval ?? 1) >= 1 else { throw ValidationError("--snapshot-interval must be positive") }
        guard (snapshotWriteEvery ?? 1) >= 1 else { throw ValidationError("--snapshot-write-every must be positive") }
        var limits = AtomicBroadcast.Limits()
        if let catchUpMemory { limits.catchUpMemoryRounds = catchUpMemory }
        let interval = snapshotInterval ?? ReplicaNode.Options().snapshotInterval
        guard interval <= limits.catchUpRounds else {
            throw ValidationError(
                "--snapshot-interval \(interval) exceeds the catch-up memory of \(limits.catchUpRounds) rounds (--catch-up-memory)")
        }
    }

    func run() async throws {
        let local = try LocalCluster(
            replicas: replicas, label: "bench", inMemory: inMemory,
            replicaArguments: (clientRequestsMax.map { ["--client-requests-max", "\($0)"] } ?? [])
                + (snapshotInterval.map { ["--snapshot-interval", "\($0)"] } ?? [])
                + (snapshotWriteEvery.map { ["--snapshot-write-every", "\($0)"] } ?? [])
                + (catchUpMemory.map { ["--catch-up-memory", "\($0)"] } ?? []))
        defer { local.stop() }
        try await local.waitUntilServing()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var multiplexers = [ClientMultiplexer]()
        var remaining = signers > 0 ? signers : clients
        while remaining > 0 {
            let slots = min(remaining, ClientMultiplexer.slotsMax)
            multiplexers.append(
                try ClientMultiplexer(
                    configuration: local.configuration, slots: slots, timeoutSeconds: timeout, eventLoop: loop))
            remaining -= slots
        }
        for multiplexer in multiplexers {
            // A loaded machine may miss a connect timeout; `connect` dials only the replicas still missing.
            var connected = 0
            for _ in 0..<10 where connected < replicas {
                connected = await multiplexer.connect()
            }
            guard connected == replicas else {
                throw ClientFailure(
                    description: "only \(connected) of \(replicas) replicas accepted client connections")
            }
        }
        // One closure per closed-loop caller: its own slot, or a share of a batcher's.
        var callers = [@Sendable ([UInt8]) -> EventLoopFuture<[UInt8]>]()
        var batchers = [OperationBatcher]()
        if signers > 0 {
            batchers = multiplexers.map { OperationBatcher(multiplexer: $0, format: KeyValueStore.Batching()) }
            let all = batchers
            callers = (0..<clients).map { number in { all[number % all.count].execute($0) } }
        } else {
            for multiplexer in multiplexers {
                for slot in 0..<multiplexer.slotCount {
                    callers.append { multiplexer.execute(slot: slot, operation: $0) }
                }
            }
        }
        if !json {
            let signing = signers > 0 ? " (callers of \(signers) signing clients, puts batched)" : ""
            print("sintra bench: n = \(replicas), t = \(local.faulty), \(clients) clients\(signing) over "
                + "\(multiplexers.count) connection(s) per replica, \(payload)-byte puts, \(warmup) s warm-up, "
                + "\(duration) s measured"
                + (clientRequestsMax.map { ", at most \($0) unanswered requests per connection at a replica" } ?? ""))
        }

        let now = NIODeadline.now().uptimeNanoseconds
        let window = (
            start: now + UInt64(warmup * 1e9), end: now + UInt64((warmup + duration) * 1e9))
        let load = ClosedLoopLoad(window: window, payload: payload, eventLoop: loop)
        let finished = try await loop.submit { [callers] in load.start(callers) }.get()

        try await Task.sleep(for: .seconds(warmup))
        let before = BenchSnapshot(local)
        // Resident memory and data-folder size are sampled through the window, so a long run shows whether
        // they stay flat after the warm-up.
        var samples = [ResourceSample(local, at: 0)]
        var elapsed = 0.0
        while elapsed < duration {
            let step = min(Self.sampleSeconds, duration - elapsed)
            try await Task.sleep(for: .seconds(step))
            elapsed += step
            samples.append(ResourceSample(local, at: elapsed))
        }
        let after = BenchSnapshot(local)
        try await finished.get()
        let result = try await loop.submit { load.outcome }.get()
        let retries = multiplexers.reduce(0) { $0 + $1.retryCount }
        let redeliveries = multiplexers.reduce(0) { $0 + $1.redeliveryCount }
        var signed: (requests: Int, operations: Int)?
        for batcher in batchers {
            let counts = try await batcher.counts().get()
            signed = ((signed?.requests ?? 0) + counts.requests, (signed?.operations ?? 0) + counts.operations)
        }
        for multiplexer in multiplexers { await multiplexer.close() }
        try await group.shutdownGracefully()
        local.stop(removingFolder: false)
        let report = BenchReport(
            command: self, faulty: local.faulty, connections: multiplexers.count, load: result, before: before,
            after: after, final: (1...replicas).map { local.statistics($0) }, samples: samples, retries: retries,
            redeliveries: redeliveries, signed: signed)
        print(json ? report.json : report.text)
        // Refusals are answers (counted by reason in the report); lost requests are not.
        guard report.lost == 0 else { throw ExitCode(2) }
    }
}

/// CPU and statistics of every replica (and this process) at one moment.
struct BenchSnapshot {
    let nanoseconds: UInt64
    let cpuSeconds: [Double?]
    let benchCPUSeconds: Double?
    let statistics: [ReplicaStatisticsFile?]

    init(_ local: LocalCluster) {
        nanoseconds = NIODeadline.now().uptimeNanoseconds
        cpuSeconds = (1...local.replicas).map { local.cpuSeconds($0) }
        benchCPUSeconds = ProcessCPU.seconds(processIdentifier: getpid())
        statistics = (1...local.replicas).map { local.statistics($0) }
    }
}

/// Resident memory and data-folder bytes of every replica at one moment of the measured window.
struct ResourceSample: Codable {
    /// Seconds since the end of the warm-up.
    var seconds: Double
    /// VmRSS of each replica process (Linux /proc), nil where unavailable.
    var residentBytes: [Int?]
    /// Bytes of each replica's data folder (its SQLite database, WAL included); nil for in-memory replicas.
    var dataBytes: [Int?]

    init(_ local: LocalCluster, at seconds: Double) {
        self.seconds = seconds
        residentBytes = (1...local.replicas).map { local.residentBytes($0) }
        dataBytes = (1...local.replicas).map { local.inMemory ? nil : local.dataBytes($0) }
    }
}

/// Closed-loop clients on one event loop: each caller issues its next put as soon as the last one is answered,
/// until the window ends. Confined to `eventLoop`.
final class ClosedLoopLoad: @unchecked Sendable {
    struct Result: Sendable {
        /// Latencies in microseconds of the requests answered inside the window.
        var latenciesMicroseconds: [UInt32] = []
        /// Answered with a result other than `.ok`, or not answered, over the whole run (refusals apart).
        var failed = 0
        /// Refused by the replicas (`SintraClient.Failure.refused`: final, or retryable after the retries the
        /// timeout allowed), by reason, over the whole run: answered, not lost.
        var refusals: [RefusalReason: Int] = [:]
        /// Answered outside the window (warm-up, or finishing after its end).
        var answeredOutside = 0
        var firstFailure: String?
    }

    let window: (start: UInt64, end: UInt64)
    let value: [UInt8]
    let eventLoop: EventLoop
    private var result = Result()
    private var running = 0
    private var done: EventLoopPromise<Void>

    init(window: (start: UInt64, end: UInt64), payload: Int, eventLoop: EventLoop) {
        self.window = window
        self.value = [UInt8](repeating: 0x5a, count: payload)
        self.eventLoop = eventLoop
        done = eventLoop.makePromise()
    }

    /// Starts every caller (each runs one operation at a time through its closure); the future completes when
    /// all have stopped.
    func start(_ callers: [@Sendable ([UInt8]) -> EventLoopFuture<[UInt8]>]) -> EventLoopFuture<Void> {
        running = callers.count
        for (number, caller) in callers.enumerated() {
            issue(caller, number: number, sequence: 0)
        }
        return done.futureResult
    }

    /// What was measured; read it after the future of `start` completed.
    var outcome: Result { result }

    private func issue(_ caller: @escaping @Sendable ([UInt8]) -> EventLoopFuture<[UInt8]>, number: Int, sequence: Int) {
        let key = Array("client-\(number)-\(sequence % 100)".utf8)
        let began = NIODeadline.now().uptimeNanoseconds
        caller(KeyValueStore.Operation.put(key: key, value: value).encoded)
            .whenComplete { outcome in
                let ended = NIODeadline.now().uptimeNanoseconds
                // Answered with `.ok`; anything else is lost, except refusals, counted by reason.
                var ok = false
                switch outcome {
                case .success(let bytes):
                    ok = (try? KeyValueStore.Result(encoded: bytes)) == .ok
                    if !ok {
                        self.result.failed += 1
                        if self.result.firstFailure == nil { self.result.firstFailure = "a put answered \(bytes)" }
                    }
                case .failure(SintraClient.Failure.refused(let reason)):
                    self.result.refusals[reason, default: 0] += 1
                case .failure(let error):
                    self.result.failed += 1
                    if self.result.firstFailure == nil { self.result.firstFailure = "\(error)" }
                }
                if !ok {
                    // Counted above.
                } else if ended >= self.window.start, ended <= self.window.end {
                    self.result.latenciesMicroseconds.append(UInt32(clamping: (ended - began) / 1000))
                } else {
                    self.result.answeredOutside += 1
                }
                if ended < self.window.end {
                    self.issue(caller, number: number, sequence: sequence + 1)
                } else {
                    self.running -= 1
                    if self.running == 0 { self.done.succeed() }
                }
            }
    }
}
