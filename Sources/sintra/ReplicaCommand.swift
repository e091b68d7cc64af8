import ArgumentParser
import Dispatch
import Foundation
import Logging
import SintraCore
import SintraCrypto
import SintraServer
import SintraStorage

/// `sintra replica`: runs one SintraKV replica until SIGINT or SIGTERM.
struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Run one replica of a SintraKV cluster (peers on its cluster.json port, clients on port + 1000).")

    @Option(name: .long, help: "Path of cluster.json.")
    var config: String

    @Option(name: .long, help: "This replica's index (1…n).")
    var id: Int

    @Option(name: .long, help: "Path of this replica's replica-I.secret.")
    var secret: String

    @Option(name: .long, help: "Serve Prometheus metrics over plain HTTP on this port (GET /metrics); 0: any port.")
    var metricsPort: Int?

    @Option(name: .long, help: "Address the metrics endpoint binds to.")
    var metricsHost: String = "127.0.0.1"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(
        name: .long,
        help: "Folder of this replica's durable state (created if absent; default: replica-I.data next to the secret file).")
    var data: String?

    @Flag(name: .long, help: "Keep no durable state. A replica run so must not be restarted into its cluster.")
    var inMemory = false

    @Flag(
        name: .long,
        help: """
            If the store is damaged (corrupted, truncated, not a replica store), move it aside (kept for \
            inspection, path in the log) and fetch the state from the peers instead of stopping.
            """)
    var reseed = false

    @Option(name: .long, help: "Rounds between signed checkpoints; the same on every replica.")
    var snapshotInterval: UInt64 = ReplicaNode.Options().snapshotInterval

    @Option(
        name: .long,
        help: "Write every N-th checkpoint into the store as its snapshot (a local choice; restarts replay at most N intervals).")
    var snapshotWriteEvery: UInt64 = ReplicaNode.Options().snapshotWriteEvery

    @Option(
        name: .long,
        help: "Fetch a checkpoint's state once it is this many rounds ahead (default: half the peers' catch-up memory).")
    var stateTransferLag: UInt64?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Rounds of ordered batches kept to answer lagging peers (a local choice; at least the snapshot interval).",
            valueName: "rounds"))
    var catchUpMemory: UInt64 = AtomicBroadcast.Limits().catchUpMemoryRounds

    @Option(
        name: .long,
        help: "Requests one client connection may have unanswered; further ones are refused 'overloaded' (retryable).")
    var clientRequestsMax: Int = ClientListener.Options().requestsInFlightMax

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Kernel send buffer of each client connection in bytes (SO_SNDBUF); default: the kernel's, autotuned.",
            discussion: """
                With a client that stops reading its replies, this buffer plus 64 KiB is what the replica holds for \
                it before the connection is closed; lower it on a replica with many clients and little memory.
                """))
    var clientSendBufferBytes: Int?

    func validate() throws {
        var limits = AtomicBroadcast.Limits()
        limits.catchUpMemoryRounds = catchUpMemory
        guard snapshotInterval <= limits.catchUpRounds else {
            throw ValidationError(
                "--snapshot-interval \(snapshotInterval) exceeds the catch-up memory of \(limits.catchUpRounds) rounds "
                    + "(--catch-up-memory): a replica that installed a checkpoint could not catch up the rounds after it")
        }
        if let bytes = clientSendBufferBytes, bytes < 4_096 {
            throw ValidationError("--client-send-buffer-bytes must be at least 4096 (the kernel rounds smaller values up)")
        }
    }

    /// The data folder: `--data`, or `replica-I.data` beside the secret file, so that the keys and the state
    /// of one replica live together and a second replica on the machine cannot pick up the first one's.
    var dataFolder: String {
        data ?? URL(fileURLWithPath: secret).deletingLastPathComponent().appendingPathComponent("replica-\(id).data").path
    }

    /// Opens (creating if absent) `store.sqlite` in the data folder. A corrupted file or one of another
    /// replica stops the start with the store's message.
    static func openStore(folder: String, owner: ReplicaStore.Owner) throws -> ReplicaStore {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try ReplicaStore.open(path: storePath(folder), owner: owner)
    }

    static func storePath(_ folder: String) -> String { (folder as NSString).appendingPathComponent("store.sqlite") }

    /// Whether `--reseed` may replace a store that failed so: damage, not a mistake of the operator. A
    /// store of another replica or of a newer build is the wrong file, and an I/O failure (permissions, a
    /// full disk) would fail the new store too, so those keep their error.
    static func isReseedable(_ error: StoreError) -> Bool {
        switch error {
        case .corrupted, .notAReplicaStore: true
        case .foreignDatabase, .newerSchema, .outOfOrder, .io: false
        }
    }

    /// Renames the store (and its WAL and shared-memory files) to `store.sqlite.damaged-<time>` in the same
    /// folder, never deleting it: the operator may want to inspect it. Returns the new path.
    static func moveAside(folder: String) throws -> String {
        let path = storePath(folder)
        let stamp = Int(Date().timeIntervalSince1970)
        var target = path + ".damaged-\(stamp)"
        var suffix = 1
        while FileManager.default.fileExists(atPath: target) {
            target = path + ".damaged-\(stamp)-\(suffix)"
            suffix += 1
        }
        for extra in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + extra) {
            try FileManager.default.moveItem(atPath: path + extra, toPath: target + extra)
        }
        return target
    }

    /// The store and the node on it; with `--reseed`, a damaged store (at open, or when the node restores
    /// from it) is moved aside and replaced by an empty one marked as reseeding, so the node stays silent
    /// until it installed a checkpoint from its peers.
    func openNode(
        cluster: ClusterConfiguration, secrets: ReplicaSecrets, options base: ReplicaNode.Options, logger: Logger
    ) throws -> (ReplicaNode, ReplicaStore) {
        let owner = ReplicaStore.Owner(clusterIdentifier: cluster.clusterIdentifier, member: id)
        var options = base
        do {
            let store = try Self.openStore(folder: dataFolder, owner: owner)
            options.store = store
            do {
                return (try ReplicaNode(cluster: cluster, secrets: secrets, options: options), store)
            } catch {
                store.close()
                throw error
            }
        } catch let error as StoreError where reseed && Self.isReseedable(error) {
            let moved = try Self.moveAside(folder: dataFolder)
            logger.warning(
                "replica store is damaged; moved it aside and reseeding from the peers",
                metadata: ["error": "\(error)", "movedTo": "\(moved)"])
            let store = try Self.openStore(folder: dataFolder, owner: owner)
            try store.markReseeding()
            options.store = store
            options.reseeding = true
            return (try ReplicaNode(cluster: cluster, secrets: secrets, options: options), store)
        }
    }

    @Option(name: .long, help: "Write the replica's statistics as JSON to this file every half second and at exit.")
    var statsFile: String?

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let cluster = try KeyFolder.loadCluster(config)
        let file = try KeyFolder.loadSecret(secret, cluster: cluster)
        guard file.secrets.index == id else {
            throw ValidationError("\(secret) holds the secrets of replica \(file.secrets.index), not \(id)")
        }
        var logger = Logger(label: "sintra.replica")
        logger[metadataKey: "member"] = "\(id)"
        var options = ReplicaNode.Options()
        options.logger = logger
        options.network.logger = Logger(label: "sintra.network")
        options.snapshotInterval = max(1, snapshotInterval)
        options.snapshotWriteEvery = max(1, snapshotWriteEvery)
        options.stateTransferLag = stateTransferLag
        options.broadcastLimits.catchUpMemoryRounds = catchUpMemory
        let node: ReplicaNode
        if inMemory {
            logger.warning("running without durable state (--in-memory): do not restart this replica into its cluster")
            node = try ReplicaNode(cluster: cluster, secrets: file.secrets, options: options)
        } else {
            let (opened, store) = try openNode(cluster: cluster, secrets: file.secrets, options: options, logger: logger)
            node = opened
            options.store = store
            logger.info("durable state", metadata: ["folder": "\(dataFolder)"])
        }
        var listenerOptions = ClientListener.Options()
        listenerOptions.logger = logger
        listenerOptions.requestsInFlightMax = max(1, clientRequestsMax)
        listenerOptions.sendBufferBytes = clientSendBufferBytes
        let listener = try ClientListener(node: node, options: listenerOptions)
        let member = cluster.members[id - 1]
        try await node.start()
        try await listener.start(host: member.host, memberPort: member.port)
        var endpoint: MetricsEndpoint?
        if let metricsPort {
            let metrics = ReplicaMetrics(node: node, listener: listener)
            let started = MetricsEndpoint(metrics: metrics, logger: logger)
            try await started.start(host: metricsHost, port: metricsPort)
            endpoint = started
        }
        logger.info("replica running", metadata: ["n": "\(cluster.replicas)", "t": "\(cluster.faulty)"])
        let statistics = statsFile.map { path in
            Task {
                while !Task.isCancelled {
                    await ReplicaStatisticsFile(node: node, listener: listener).write(to: path)
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        }

        let signal = await Self.waitForTerminationSignal()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        await endpoint?.shutdown()
        statistics?.cancel()
        _ = await statistics?.value
        if let statsFile { await ReplicaStatisticsFile(node: node, listener: listener).write(to: statsFile) }
        await listener.shutdown()
        let executed = await node.executedCount
        await node.shutdown()
        options.store?.close()
        logger.info("stopped", metadata: ["executed": "\(executed)"])
    }

    /// Waits for SIGINT or SIGTERM and returns its number.
    static func waitForTerminationSignal() async -> Int32 {
        await withCheckedContinuation { continuation in
            let queue = DispatchQueue(label: "sintra.signals")
            let resumed = ResumeOnce()
            var sources = [DispatchSourceSignal]()
            for number in [SIGINT, SIGTERM] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler {
                    if resumed.claim() { continuation.resume(returning: number) }
                }
                source.resume()
                sources.append(source)
            }
            SignalSources.keep(sources)
        }
    }
}

/// Keeps signal sources alive for the life of the process.
private enum SignalSources {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []
    static func keep(_ new: [DispatchSourceSignal]) { sources += new }
}

/// Lets exactly one of several callers through (signal handlers run on one serial queue).
private final class ResumeOnce: @unchecked Sendable {
    private var done = false
    func claim() -> Bool {
        guard !done else { return false }
        done = true
        return true
    }
}

/// What `sintra replica --stats-file` writes: the node's counters, for `sintra bench` and scripts.
struct ReplicaStatisticsFile: Codable, Equatable {
    var round: UInt64
    var executed: UInt64
    var batches: Int
    var deliveredRequests: Int
    var faults: Int
    var malformedFrames: Int
    var refusedSends: Int
    /// Client signatures checked at submission and at execution, requests held back at submission (this
    /// replica not a first proposer) and those of them that came overdue (`ReplicaNode.submit`).
    var submissionVerifications: Int
    var executionVerifications: Int
    /// Ordered requests this replica did not verify because t + 1 replicas queued them.
    var attestedRequests: Int?
    var deferredRequests: Int
    var overdueRequests: Int
    /// Requests answered from the executor's cache (they came after execution) and refused as stale.
    var cachedReplies: Int?
    var staleRequests: Int?
    /// Client requests refused `overloaded` (over the listener's limits), and client connections refused or
    /// closed for flooding past them (`ClientListener.Statistics.overloaded`).
    var overloadedRefusals: Int?
    var overloadCloses: Int?
    /// Rounds delivered from the leader's fast path and from agreement.
    var fastPathRounds: Int?
    var agreementRounds: Int?
    var fastPathTimeouts: Int?

    init(node: ReplicaNode, listener: ClientListener? = nil) async {
        let statistics = await node.statistics
        round = await node.round
        executed = await node.executedCount
        batches = statistics.batches
        deliveredRequests = statistics.deliveredRequests
        faults = statistics.faults
        malformedFrames = statistics.malformedFrames
        refusedSends = statistics.refusedSends
        submissionVerifications = statistics.submissionVerifications
        executionVerifications = statistics.executionVerifications
        attestedRequests = statistics.attestedRequests
        deferredRequests = statistics.deferredRequests
        overdueRequests = statistics.overdueRequests
        cachedReplies = statistics.cachedReplies
        staleRequests = statistics.staleRequests
        fastPathRounds = statistics.fastPathRounds
        agreementRounds = statistics.agreementRounds
        fastPathTimeouts = statistics.fastPathTimeouts
        if let clients = listener?.statistics {
            overloadedRefusals = clients.refusedByReason[.overloaded, default: 0]
            overloadCloses = clients.overloaded
        }
    }

    /// Writes atomically (a temporary file renamed over the old one), so a reader never sees half a file.
    func write(to path: String) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
