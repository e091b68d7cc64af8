import Crypto
import Logging
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica

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
/// Replies go to `replyHandler`, called on this actor in execution order.
///
/// The node keeps no votes on disk yet: a replica that crashes and restarts with a fresh instance must not
/// rejoin the same cluster (DESIGN.md, Replication: persistence comes with the durability issue).
public actor ReplicaNode {
    /// The path of the one atomic broadcast instance a replica runs.
    public static let path = InstancePath("abc")

    /// Logging and the network's options.
    public struct Options: Sendable {
        public var network = ReplicaNetwork.Options()
        public var logger = Logger(label: "sintra.replica")
        public var broadcastLimits = AtomicBroadcast.Limits()

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
        /// Frames the network refused because a peer's send queue was full.
        public var refusedSends = 0
        public init() {}
    }

    public let member: Int
    public let configuration: GroupConfiguration
    public let network: ReplicaNetwork
    private var instance: AtomicBroadcast.Instance
    private var executor = RequestExecutor(machine: KeyValueStore())
    private var authenticator: RequestAuthenticator
    private let wireLimits: WireLimits
    private let logger: Logger
    private var receiving: Task<Void, Never>?
    private var replyHandler: (@Sendable (ClientReply) -> Void)?
    public private(set) var statistics = Statistics()
    /// SHA-256 chain over the executed requests in order: equal at two replicas iff they executed the same
    /// requests in the same order (with overwhelming probability).
    public private(set) var executionChain = [UInt8](repeating: 0, count: 32)

    /// A node for replica `secrets.index` of `cluster`.
    public init(cluster: ClusterConfiguration, secrets: ReplicaSecrets, options: Options = Options()) throws {
        let configuration = try GroupConfiguration(cluster: cluster)
        let keys = try LocalKeys(secrets: secrets)
        self.member = secrets.index
        self.configuration = configuration
        self.authenticator = RequestAuthenticator(clusterIdentifier: configuration.clusterIdentifier)
        self.network = try ReplicaNetwork(configuration: cluster, identity: keys.identity, options: options.network)
        self.instance = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys, path: ReplicaNode.path, random: .system(),
            limits: options.broadcastLimits)
        // Agreement values carry up to n queues, so a body may be as large as a frame.
        self.wireLimits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: configuration.replicas)
        var logger = options.logger
        logger[metadataKey: "member"] = "\(secrets.index)"
        self.logger = logger
    }

    /// Sets where replies go (called on this actor, in execution order).
    public func setReplyHandler(_ handler: @escaping @Sendable (ClientReply) -> Void) {
        replyHandler = handler
    }

    /// Starts the network and the one task that feeds its frames to the instance.
    public func start() async throws {
        try await network.start()
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
            try request.verify(clusterIdentifier: configuration.clusterIdentifier)
        } catch {
            await refuse(error)
            return .failure(error)
        }
        verified?()
        return .success(await submitVerified(request.encoded))
    }

    private func refuse(_ error: ClientRequestError) {
        statistics.refusedRequests[error, default: 0] += 1
        logger.debug("refused client request", metadata: ["reason": "\(error.reason)"])
    }

    private func submitVerified(_ bytes: [UInt8]) -> AtomicBroadcast.Instance.SubmitResult {
        authenticator.remember(verified: bytes)
        let (result, effects) = instance.submit(bytes)
        perform(effects)
        return result
    }

    /// Requests executed so far.
    public var executedCount: UInt64 { executor.executedCount }
    /// The digest of the key-value state.
    public var stateDigest: [UInt8] { executor.machine.digest }
    /// The atomic broadcast round being decided.
    public var round: UInt64 { instance.round }
    /// What a status query returns.
    public var status: ReplicaStatus {
        ReplicaStatus(
            member: member, round: instance.round, executedCount: executor.executedCount,
            batchCount: UInt64(statistics.batches), stateDigest: executor.machine.digest)
    }

    private func receive(_ received: ReceivedFrame) {
        guard received.frame.path == ReplicaNode.path,
            let message = try? AtomicBroadcast.Message(encoded: received.frame.body, limits: wireLimits)
        else {
            statistics.malformedFrames += 1
            logger.debug("dropped malformed frame", metadata: ["sender": "\(received.sender)"])
            return
        }
        perform(instance.handle(message, from: received.sender))
    }

    /// Sends the messages, records the faults, then executes the delivered batches in order.
    private func perform(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) {
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
    }

    private func execute(_ batch: AtomicBroadcast.Batch) {
        statistics.batches += 1
        let before = authenticator.verifications
        let authenticated = authenticator.authenticate(batch: batch.requests)
        statistics.executionVerifications += Int(authenticator.verifications - before)
        for (bytes, authentication) in zip(batch.requests, authenticated) {
            let request: ClientRequest
            switch authentication {
            case .success(let authentic):
                request = authentic
            case .failure(.malformed):
                statistics.malformedRequests += 1
                continue
            case .failure:
                statistics.unauthenticRequests += 1
                continue
            }
            var chain = executionChain
            chain += bytes
            switch executor.execute(request) {
            case .executed(let reply):
                executionChain = Array(SHA256.hash(data: chain))
                replyHandler?(reply)
            case .duplicate(let reply):
                replyHandler?(reply)
            case .stale:
                break
            }
        }
    }
}
