import Crypto
import Logging
import NIOConcurrencyHelpers
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import SintraStorage

/// One replica of SintraKV on a real network: atomic broadcast over `ReplicaNetwork`, feeding a
/// `RequestExecutor<KeyValueStore>`.
///
/// The node is the shell around the sans-IO protocol (STYLE.md, "the algorithm owns no I/O"): it owns one
/// `AtomicBroadcast.Instance` at `ReplicaNode.path`, touched only from this actor, and turns
///
/// - frames from the network (path `abc`, body an `AtomicBroadcast.Message`) into `handle` calls; frames of
///   another path or bodies that do not decode are counted and dropped, never trusted;
/// - effects into frames: `.all` is a broadcast (the local replica included), `.node(i)` a send;
/// - client requests into submissions, after verifying their signatures off the actor (`submit`);
/// - every delivered `Batch` into executions, request by request in batch order. A request that does not
///   decode as a `ClientRequest`, or whose signature does not verify, is skipped, which every honest
///   replica does alike, so states stay equal. A Byzantine replica can order anything from its own queue,
///   so requests this node did not verify at submission are verified here (`RequestAuthenticator`).
///
/// Replies go to `replyHandler`, called on this actor once per delivered batch with the batch's replies in
/// execution order (one call per batch, so the listener writes and flushes each connection once per batch).
///
/// With a `ReplicaStore` (`Options.store`) the node is durable (docs/DURABILITY.md): every delivered batch
/// is committed to disk, together with the send horizon, before the node executes it, replies, or sends a
/// message that followed from it; every `snapshotInterval` rounds the executor is snapshotted. A node
/// built on an existing store restores the snapshot, replays the log after it (equal execution chain and
/// digest), and resumes atomic broadcast at the next round, silent up to the send horizon so that it never
/// contradicts a message it sent before the restart. Without a store everything is in memory, and a
/// restarted replica must not rejoin its cluster.
public actor ReplicaNode {
    /// The path of the one atomic broadcast instance a replica runs.
    public static let path = InstancePath("abc")

    /// Logging and the network's options.
    public struct Options: Sendable {
        public var network = ReplicaNetwork.Options()
        public var logger = Logger(label: "sintra.replica")
        public var broadcastLimits = AtomicBroadcast.Limits()
        /// Where the node keeps its durable state; nil keeps everything in memory.
        public var store: ReplicaStore?
        /// Rounds between snapshots of the executor. Recovery replays at most this many rounds, and the log
        /// keeps this many plus `broadcastLimits.deliveredMemoryRounds`.
        public var snapshotInterval: UInt64 = 256

        public init() {}
    }

    /// Counters for logs and tests.
    public struct Statistics: Sendable, Equatable {
        /// Frames with another instance path, or a body that does not decode.
        public var malformedFrames = 0
        /// Faults the protocol reported about peers.
        public var faults = 0
        /// The same, by `Fault.Kind` raw value.
        public var faultsByKind: [String: Int] = [:]
        /// Ordered requests that did not decode as `ClientRequest` (skipped).
        public var malformedRequests = 0
        /// Ordered requests with an invalid public key or signature (skipped).
        public var unauthenticRequests = 0
        /// Client requests refused at submission, by reason.
        public var refusedRequests: [ClientRequestError: Int] = [:]
        /// Signature verifications at execution (requests not verified at submission).
        public var executionVerifications = 0
        /// Batches delivered.
        public var batches = 0
        /// Requests in the delivered batches (before deduplication by the executor): requests per batch is
        /// this over `batches`.
        public var deliveredRequests = 0
        /// Frames the network refused because a peer's send queue was full.
        public var refusedSends = 0
        /// Rounds restored from the store at start (replayed after its snapshot).
        public var replayedRounds = 0
        /// Snapshots written.
        public var snapshots = 0
        public init() {}
    }

    public let member: Int
    public let configuration: GroupConfiguration
    public let network: ReplicaNetwork
    private var instance: AtomicBroadcast.Instance
    /// The executor, the execution chain, and the authenticator (`Execution`).
    private var execution: Execution
    private let store: ReplicaStore?
    private let snapshotInterval: UInt64
    private var snapshotRound: UInt64 = 0
    /// The store error that stopped this node: a replica that cannot persist takes no further part
    /// (fail-stop), because going on would send messages its disk does not know about.
    public private(set) var storageFailure: StoreError?
    /// Decoded client keys for verification at submission, off the actor (decoding checks the key's order,
    /// about 40 % of a verification); cleared when `RequestAuthenticator.keyCountMax` is reached.
    private let submissionKeys = NIOLockedValueBox([[UInt8]: MemberPublicKey]())
    private let wireLimits: WireLimits
    private let logger: Logger
    private var receiving: Task<Void, Never>?
    private var replyHandler: (@Sendable ([ClientReply]) -> Void)?
    public private(set) var statistics = Statistics()
    /// SHA-256 chain over the executed requests in order: equal at two replicas iff they executed the same
    /// requests in the same order (with overwhelming probability).
    public var executionChain: [UInt8] { execution.chain }

    /// A node for replica `secrets.index` of `cluster`. With `options.store`, restores the state it holds
    /// (throws `StoreError` if it belongs to another replica or does not decode).
    public init(cluster: ClusterConfiguration, secrets: ReplicaSecrets, options: Options = Options()) throws {
        let configuration = try GroupConfiguration(cluster: cluster)
        let keys = try LocalKeys(secrets: secrets)
        self.member = secrets.index
        self.configuration = configuration
        self.network = try ReplicaNetwork(configuration: cluster, identity: keys.identity, options: options.network)
        self.store = options.store
        self.snapshotInterval = max(1, options.snapshotInterval)
        var resumption: AtomicBroadcast.Instance.Resumption?
        var recovered: Recovered?
        if let store = options.store {
            let owner = ReplicaStore.Owner(clusterIdentifier: cluster.clusterIdentifier, member: secrets.index)
            guard store.owner == owner else {
                throw StoreError.foreignDatabase(path: store.path, expected: owner, found: store.owner)
            }
            recovered = try Recovered(store.recover(), clusterIdentifier: configuration.clusterIdentifier, path: store.path)
            resumption = recovered?.resumption
        }
        self.execution = recovered?.execution ?? Execution(clusterIdentifier: configuration.clusterIdentifier)
        self.instance = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys, path: ReplicaNode.path, random: .system(),
            limits: options.broadcastLimits, resuming: resumption)
        // Agreement values carry up to n queues, so a body may be as large as a frame.
        self.wireLimits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: configuration.replicas)
        var logger = options.logger
        logger[metadataKey: "member"] = "\(secrets.index)"
        self.logger = logger
        if let recovered, recovered.resumption.nextRound > 1 || recovered.resumption.sendHorizon > 0 {
            snapshotRound = recovered.snapshotRound
            statistics.replayedRounds = recovered.replayedRounds
            logger.info(
                "restored from the replica store",
                metadata: [
                    "snapshotRound": "\(recovered.snapshotRound)", "replayedRounds": "\(recovered.replayedRounds)",
                    "nextRound": "\(recovered.resumption.nextRound)",
                    "silentThrough": "\(recovered.resumption.sendHorizon)",
                ])
        }
    }

    /// Sets where replies go: called on this actor once per delivered batch, with its replies in execution order.
    public func setReplyHandler(_ handler: @escaping @Sendable ([ClientReply]) -> Void) {
        replyHandler = handler
    }

    /// Starts the network and the one task that feeds its frames to the instance.
    public func start() async throws {
        try await network.start()
        // A resumed instance asks its peers for the rounds it must catch up silently.
        perform(instance.start())
        let frames = network.frames
        receiving = Task { [weak self] in
            for await received in frames {
                guard let self else { return }
                await self.receive(received)
            }
        }
    }

    /// Stops the network; the receiving task ends when its stream finishes.
    public func shutdown() async {
        await network.shutdown()
        await receiving?.value
        receiving = nil
    }

    /// Verifies a client request's signature (off the actor, so verifications of concurrent requests run in
    /// parallel) and submits it to this replica's queue for ordering; refusals are counted by reason.
    /// `verified` runs once the signature verified, before the request is queued (the client listener
    /// routes the client's replies to the connection then, so a forged request cannot divert them).
    @discardableResult
    public nonisolated func submit(_ request: ClientRequest, verified: (@Sendable () -> Void)? = nil) async
        -> Result<AtomicBroadcast.Instance.SubmitResult, ClientRequestError>
    {
        do {
            try request.verify(clusterIdentifier: configuration.clusterIdentifier, key: try submissionKey(of: request))
        } catch {
            await refuse(error)
            return .failure(error)
        }
        verified?()
        return .success(await submitVerified(request.encoded))
    }

    private nonisolated func submissionKey(of request: ClientRequest) throws(ClientRequestError) -> MemberPublicKey {
        if let known = submissionKeys.withLockedValue({ $0[request.publicKey] }) { return known }
        let key: MemberPublicKey
        do {
            key = try MemberPublicKey(bytes: request.publicKey)
        } catch {
            throw .invalidPublicKey
        }
        submissionKeys.withLockedValue { keys in
            if keys.count >= RequestAuthenticator.keyCountMax { keys.removeAll(keepingCapacity: true) }
            keys[request.publicKey] = key
        }
        return key
    }

    private func refuse(_ error: ClientRequestError) {
        statistics.refusedRequests[error, default: 0] += 1
        logger.debug("refused client request", metadata: ["reason": "\(error.reason)"])
    }

    private func submitVerified(_ bytes: [UInt8]) -> AtomicBroadcast.Instance.SubmitResult {
        // A stopped node orders nothing more; the client gets its answers from the other replicas.
        guard storageFailure == nil else { return .queueFull }
        execution.authenticator.remember(verified: bytes)
        let (result, effects) = instance.submit(bytes)
        perform(effects)
        return result
    }

    /// Requests executed so far.
    public var executedCount: UInt64 { execution.executor.executedCount }
    /// The digest of the key-value state.
    public var stateDigest: [UInt8] { execution.executor.machine.digest }
    /// The atomic broadcast round being decided.
    public var round: UInt64 { instance.round }
    /// What a status query returns.
    public var status: ReplicaStatus {
        ReplicaStatus(
            member: member, round: instance.round, executedCount: execution.executor.executedCount,
            batchCount: UInt64(statistics.batches), stateDigest: execution.executor.machine.digest)
    }

    private func receive(_ received: ReceivedFrame) {
        guard storageFailure == nil else { return }
        guard received.frame.path == ReplicaNode.path,
            let message = try? AtomicBroadcast.Message(encoded: received.frame.body, limits: wireLimits)
        else {
            statistics.malformedFrames += 1
            logger.debug("dropped malformed frame", metadata: ["sender": "\(received.sender)"])
            return
        }
        perform(instance.handle(message, from: received.sender))
    }

    /// Persists the delivered batches and the send horizon, then sends the messages, records the faults,
    /// and executes the batches in order. Persisting first is what makes a restart safe: a reply or a
    /// message never gets ahead of the disk.
    private func perform(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) {
        guard persist(effects) else { return }
        for outgoing in effects.messages {
            let frame = Frame(
                clusterIdentifier: configuration.clusterIdentifier, sender: member, path: ReplicaNode.path,
                body: outgoing.message.encoded)
            switch outgoing.recipient {
            case .all:
                statistics.refusedSends += network.broadcast(frame).count
            case .node(let peer):
                if network.send(frame, to: peer) == .queueFull { statistics.refusedSends += 1 }
            }
        }
        for fault in effects.faults {
            statistics.faults += 1
            statistics.faultsByKind[fault.kind.rawValue, default: 0] += 1
            logger.warning("peer fault", metadata: ["fault": "\(fault)"])
        }
        for batch in effects.outputs {
            execute(batch)
        }
        if let last = effects.outputs.last { snapshotIfDue(after: last.round) }
    }

    /// One transaction for all delivered batches (group commit) that also raises the send horizon to the
    /// highest round of a binding message about to be sent (a queue or an agreement message,
    /// `AtomicBroadcast.bindingRound(of:)`). Usually the horizon rises with a batch: the queue of round
    /// r + 1 goes out in the same effects that deliver round r. An idle replica has sent nothing for the
    /// next round, so after a restart it is silent in no round. Returns false, and stops the node, if the
    /// store failed.
    private func persist(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) -> Bool {
        guard storageFailure == nil else { return false }
        guard let store else { return true }
        let horizon = effects.messages.compactMap { AtomicBroadcast.bindingRound(of: $0.message) }.max() ?? 0
        guard !effects.outputs.isEmpty || horizon > store.sendHorizon else { return true }
        do {
            try store.commit(
                effects.outputs.map { ReplicaStore.LogEntry(round: $0.round, batch: ReplicaNode.encode($0.requests)) },
                sendHorizon: horizon)
            return true
        } catch {
            storageFailure = error
            logger.critical("replica store failed; this replica stops", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func snapshotIfDue(after round: UInt64) {
        guard let store, round >= snapshotRound + snapshotInterval else { return }
        do {
            try store.saveSnapshot(
                ReplicaStore.Snapshot(round: round, state: execution.chain + execution.executor.snapshot()),
                keepRounds: instance.limits.deliveredMemoryRounds)
            snapshotRound = round
            statistics.snapshots += 1
        } catch {
            // The log still holds every round since the last snapshot, so this is not yet a failure of
            // durability; the next due round tries again.
            logger.error("snapshot failed", metadata: ["error": "\(error)"])
        }
    }

    private func execute(_ batch: AtomicBroadcast.Batch) {
        statistics.batches += 1
        statistics.deliveredRequests += batch.requests.count
        let outcome = execution.execute(batch.requests)
        statistics.malformedRequests += outcome.malformed
        statistics.unauthenticRequests += outcome.unauthentic
        statistics.executionVerifications += outcome.verifications
        if !outcome.replies.isEmpty { replyHandler?(outcome.replies) }
    }

    /// What executing ordered requests touches: the executor, the execution chain, and the authenticator.
    /// One function for live execution and recovery, so that replay reproduces the chain exactly.
    struct Execution {
        var executor: RequestExecutor<KeyValueStore>
        var chain: [UInt8]
        var authenticator: RequestAuthenticator

        /// The state before the first request.
        init(clusterIdentifier: [UInt8]) {
            executor = RequestExecutor(machine: KeyValueStore())
            chain = [UInt8](repeating: 0, count: 32)
            authenticator = RequestAuthenticator(clusterIdentifier: clusterIdentifier)
        }

        /// Authenticates and executes the requests in order; returns the replies, in execution order, and
        /// the counts of skipped requests.
        mutating func execute(_ requests: [[UInt8]])
            -> (replies: [ClientReply], malformed: Int, unauthentic: Int, verifications: Int)
        {
            var replies = [ClientReply]()
            replies.reserveCapacity(requests.count)
            var malformed = 0
            var unauthentic = 0
            let before = authenticator.verifications
            let authenticated = authenticator.authenticate(batch: requests)
            for (bytes, authentication) in zip(requests, authenticated) {
                let request: ClientRequest
                switch authentication {
                case .success(let authentic):
                    request = authentic
                case .failure(.malformed):
                    malformed += 1
                    continue
                case .failure:
                    unauthentic += 1
                    continue
                }
                switch executor.execute(request) {
                case .executed(let reply):
                    chain = Array(SHA256.hash(data: chain + bytes))
                    replies.append(reply)
                case .duplicate(let reply):
                    replies.append(reply)
                case .stale:
                    break
                }
            }
            return (replies, malformed, unauthentic, Int(authenticator.verifications - before))
        }
    }

    // MARK: Durable encoding

    /// A logged batch: its requests, count-prefixed, each length-prefixed.
    static func encode(_ requests: [[UInt8]]) -> [UInt8] {
        var writer = ByteWriter(capacity: requests.reduce(4) { $0 + 4 + $1.count })
        writer.write(UInt32(requests.count))
        for request in requests { writer.writeVariable(request) }
        return writer.bytes
    }

    static func decodeBatch(_ bytes: [UInt8]) throws(DecodingError) -> [[UInt8]] {
        var reader = ByteReader(bytes, context: "logged batch")
        let count = Int(try reader.readUInt32())
        // Every request takes at least its 4-byte length, which bounds the count by the bytes present.
        guard count <= reader.remainingCount / 4 else {
            throw DecodingError(.tooLong(maximum: reader.remainingCount / 4, actual: count), in: "logged batch")
        }
        var requests = [[UInt8]]()
        requests.reserveCapacity(count)
        for _ in 0..<count { requests.append(try reader.readVariable(maximum: Frame.frameBytesMax)) }
        try reader.finish()
        return requests
    }

    /// The state rebuilt from a store: the snapshot's executor and chain, advanced by the log after it
    /// (requests re-authenticated as at first execution: the result is the same, since verification is
    /// deterministic).
    struct Recovered {
        var execution: Execution
        var snapshotRound: UInt64 = 0
        var replayedRounds = 0
        var resumption: AtomicBroadcast.Instance.Resumption

        init(_ recovery: ReplicaStore.Recovery, clusterIdentifier: [UInt8], path: String) throws(StoreError) {
            execution = Execution(clusterIdentifier: clusterIdentifier)
            var recentBatches = [AtomicBroadcast.Batch]()
            do {
                if let snapshot = recovery.snapshot {
                    guard snapshot.state.count >= 32 else { throw DecodingError(.truncated, in: "snapshot") }
                    execution.chain = Array(snapshot.state[0..<32])
                    execution.executor = try RequestExecutor(snapshot: Array(snapshot.state[32...]))
                    snapshotRound = snapshot.round
                }
                for entry in recovery.log {
                    let requests = try ReplicaNode.decodeBatch(entry.batch)
                    recentBatches.append(AtomicBroadcast.Batch(round: entry.round, requests: requests))
                    guard entry.round > snapshotRound else { continue }
                    _ = execution.execute(requests)
                    replayedRounds += 1
                }
            } catch {
                throw StoreError.corrupted(path: path, detail: "\(error)")
            }
            resumption = AtomicBroadcast.Instance.Resumption(
                nextRound: recovery.lastRound + 1, recentBatches: recentBatches, sendHorizon: recovery.sendHorizon)
        }
    }
}
