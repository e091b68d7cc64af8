import Crypto
import SintraCore
import SintraCrypto
import SintraReplica

/// One delivered round at a `kv` replica: the requests in order, what the replica did with each, and the
/// digest of its state afterwards.
public struct KeyValueRound: Sendable, Equatable {
    public let round: UInt64
    public let requests: [[UInt8]]
    /// Aligned with `requests`.
    public let replies: [KeyValueReply]
    public let digest: [UInt8]
}

/// One replica of the `kv` simulation: atomic broadcast feeding a `RequestExecutor<KeyValueStore>`.
///
/// Honest clients are closed-loop: a client sends its next request once it has a result for the
/// previous one. The simulation models that by having each replica the client talks to submit the
/// client's next request when it has executed the previous one (a client that pipelined requests would
/// see later ones executed first and the earlier ones rejected as stale).
///
/// Durable as `ReplicaNode` is: every call into atomic broadcast is committed to the `SimulatedStore`
/// before its effects leave the replica, and every `snapshotInterval` rounds the executor is
/// snapshotted after the call's batches are executed. A restart (`KeyValueAdapter.restart`) restores the
/// snapshot and replays the log after it through `apply`, the function the live path uses.
public struct KeyValueReplica: ProtocolInstance {
    public typealias Message = AtomicBroadcast.Message
    public typealias Output = KeyValueRound

    public private(set) var broadcast: AtomicBroadcast.Instance
    public private(set) var executor: RequestExecutor<KeyValueStore>
    /// Client signatures, checked before submission and at execution (as `ReplicaNode` does).
    private var authenticator: RequestAuthenticator
    /// For each honest client that talks to this replica, its requests not submitted yet, in order.
    private var scripts: [[UInt8]: [ClientRequest]]
    /// What survives a crash.
    public private(set) var store: SimulatedStore
    let snapshotInterval: UInt64

    init(
        broadcast: AtomicBroadcast.Instance, executor: RequestExecutor<KeyValueStore>,
        authenticator: RequestAuthenticator, scripts: [[UInt8]: [ClientRequest]], store: SimulatedStore,
        snapshotInterval: UInt64
    ) {
        self.broadcast = broadcast
        self.executor = executor
        self.authenticator = authenticator
        self.scripts = scripts
        self.store = store
        self.snapshotInterval = snapshotInterval
    }

    public var path: InstancePath { broadcast.path }

    public var isFinished: Bool { broadcast.isFinished && scripts.values.allSatisfy(\.isEmpty) }

    /// Submits requests in order (the clients' first ones, and Byzantine clients' requests); a request
    /// that does not decode or whose signature does not verify is refused, as `ReplicaNode` refuses it.
    /// `peer` restarted: its catch-up budget here starts again (`AtomicBroadcast.Instance.peerRestarted`).
    mutating func peerRestarted(_ peer: Int) { broadcast.peerRestarted(peer) }

    mutating func submit(_ requests: [[UInt8]]) -> Effects<Message, Output> {
        var effects = Effects<Message, AtomicBroadcast.Batch>()
        for request in requests {
            guard (try? authenticator.admit(request)) != nil else { continue }
            effects.append(committed(broadcast.submit(request).1))
        }
        return execute(effects)
    }

    /// Commits one call's effects and the journal entries it recorded before they take effect.
    private mutating func committed(_ effects: Effects<Message, AtomicBroadcast.Batch>)
        -> Effects<Message, AtomicBroadcast.Batch>
    {
        store.commit(effects, journal: broadcast.takeJournal())
        return effects
    }

    /// A restarted replica's first call (`AtomicBroadcast.Instance.start`), then its clients' requests.
    mutating func start(resubmitting requests: [[UInt8]]) -> Effects<Message, Output> {
        var effects = execute(committed(broadcast.start()))
        effects.append(submit(requests))
        return effects
    }

    public mutating func handle(_ message: Message, from sender: Int) -> Effects<Message, Output> {
        execute(committed(broadcast.handle(message, from: sender)))
    }

    /// Authenticates and executes one batch's requests in order: what this replica replies to each, and
    /// the requests it executed. One function for live execution and for replay after a restart.
    static func apply(
        _ requests: [[UInt8]], executor: inout RequestExecutor<KeyValueStore>,
        authenticator: inout RequestAuthenticator
    ) -> (replies: [KeyValueReply], executed: [ClientRequest]) {
        var replies = [KeyValueReply]()
        var executed = [ClientRequest]()
        for authentication in authenticator.authenticate(batch: requests) {
            let request: ClientRequest
            switch authentication {
            case .success(let authentic): request = authentic
            case .failure(.malformed):
                replies.append(.undecodable)
                continue
            case .failure:
                replies.append(.unauthentic)
                continue
            }
            switch executor.execute(request) {
            case .executed(let reply):
                replies.append(.executed(reply.result))
                executed.append(request)
            case .duplicate(let reply):
                replies.append(.duplicate(reply.result))
            case .stale:
                replies.append(.stale)
            case .replyNotKept:
                replies.append(.replyNotKept)
            }
        }
        return (replies, executed)
    }

    /// Executes every delivered batch in order, submitting each client's next request as its previous one
    /// is executed (which may deliver more). The effects are committed already; the snapshot follows the
    /// execution of a call's batches.
    private mutating func execute(_ first: Effects<Message, AtomicBroadcast.Batch>) -> Effects<Message, Output> {
        var result = Effects<Message, Output>()
        var pending = [first]
        while !pending.isEmpty {
            let effects = pending.removeFirst()
            result.messages += effects.messages
            result.faults += effects.faults
            for batch in effects.outputs {
                let (replies, executed) = Self.apply(
                    batch.requests, executor: &executor, authenticator: &authenticator)
                var next = [ClientRequest]()
                for request in executed {
                    if let following = scripts[request.client]?.first, following.sequence == request.sequence + 1 {
                        scripts[request.client]!.removeFirst()
                        next.append(following)
                    }
                }
                result.output(
                    KeyValueRound(
                        round: batch.round, requests: batch.requests, replies: replies,
                        digest: executor.machine.digest))
                for request in next {
                    guard (try? authenticator.admit(request.encoded)) != nil else { continue }
                    pending.append(committed(broadcast.submit(request.encoded).1))
                }
            }
            if let last = effects.outputs.last {
                let executor = self.executor
                store.snapshotIfDue(after: last.round, interval: snapshotInterval) { executor.snapshot() }
            }
        }
        return result
    }
}

/// SintraKV replicated by atomic broadcast in the simulator (`KeyValueReplica` on every node).
///
/// Scenario: two honest closed-loop clients issue put, get, delete, compare-and-swap and scan requests on a
/// few keys, to every replica or to t + 1 honest ones (one client sends its first request twice); a
/// Byzantine client sends garbage operation bytes, the same (client, sequence) twice with different
/// operations, and a stale sequence, and bytes that are no request at all, to every replica.
///
/// Checked: everything `abc` checks (batches agree round by round, so the state digests after each round
/// agree too; total order; integrity; no loss), plus `KeyValueReference.check`: every honest replica's
/// replies and state digest after every round equal a sequential reference execution of the common order,
/// and every honest client accepts, with t + 1 equal replies (after forged replies of every Byzantine
/// replica), exactly the reference's result for each of its requests.
///
/// Clients sign their requests (`ClientKey`); replicas refuse unauthentic requests at submission and skip
/// them at execution. Byzantine replicas: `AtomicBroadcastAttacks` and `honest`, as for `abc`, and
/// `forge-client`, which puts a request in an honest client's name (its public key, a far-ahead sequence
/// number, a signature by another key) into its queue: every honest replica must skip it, and the client
/// must go on getting results.
public struct KeyValueAdapter: SimulatedProtocol {
    public typealias Instance = KeyValueReplica
    public typealias ByzantineMemory = AtomicBroadcastAttacks.Memory

    public struct Scenario: Sendable {
        public struct Client: Sendable {
            public let id: [UInt8]
            public let key: ClientKey
            public let targets: [Int]
            /// Sequence numbers 1, 2, …
            public let requests: [ClientRequest]
        }

        public struct Submission: Sendable {
            public let bytes: [UInt8]
            public let targets: [Int]
        }

        public let clients: [Client]
        /// The Byzantine client's requests and bytes that are no request.
        public let byzantineSubmissions: [Submission]
        /// Every request signed by the holder of its key (honest and Byzantine clients, and the requests
        /// Byzantine replicas invent with keys of their own): the reference executes exactly these.
        public let authentic: Set<[UInt8]>
        /// Requests Byzantine replicas make up for their queues.
        public let invented: [[UInt8]]
        /// What `forge-client` replicas order in an honest client's name.
        public let forged: [UInt8]
        /// What every Byzantine replica answers to every client.
        public let forgedResult: [UInt8]
        public let limits: AtomicBroadcast.Limits
    }

    /// Requests per honest client (nil: the seed draws 1–2).
    public let requestsPerClient: Int?
    /// The queue cap (nil: the seed draws 2–4).
    public let batchCountMax: Int?
    /// Whether replicas journal and replay (stage 2) or restart silent up to the send horizon (stage 1).
    public let journaling: Bool
    /// Whether rounds try the leader's fast path first (`AtomicBroadcast.Limits.optimistic`).
    public let optimistic: Bool

    public init(requestsPerClient: Int? = nil, batchCountMax: Int? = nil, journaling: Bool = true, optimistic: Bool = true) {
        self.requestsPerClient = requestsPerClient
        self.batchCountMax = batchCountMax
        self.journaling = journaling
        self.optimistic = optimistic
    }

    public var name: String { "kv" }

    public var commandLineOptions: String {
        (requestsPerClient.map { " --requests \($0)" } ?? "") + (batchCountMax.map { " --batch \($0)" } ?? "")
            + (journaling ? "" : " --no-journal") + (optimistic ? "" : " --pessimistic")
    }

    public func isTimer(_ message: Instance.Message) -> Bool { AtomicBroadcastAdapter.isTimer(message) }

    static let keys: [[UInt8]] = [[0x61], [0x62], [0x63]]

    /// A random operation on the few keys.
    static func operation(random: inout ProtocolRandom) -> KeyValueStore.Operation {
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next() % 4) } }
        let key = keys[Int(random.next() % UInt64(keys.count))]
        switch random.next() % 10 {
        case 0...2: return .put(key: key, value: bytes(1 + Int(random.next() % 2)))
        case 3...4: return .get(key: key)
        case 5: return .delete(key: key)
        case 6...8:
            let expected: [UInt8]? = random.next() % 3 == 0 ? nil : bytes(1)
            return .compareAndSwap(key: key, expected: expected, new: bytes(1))
        default: return .scan(from: keys[0], to: [0x64], limit: Int(random.next() % 4))
        }
    }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        func identifier() -> [UInt8] { (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        func makeKey() -> ClientKey {
            do {
                return try ClientKey(seed: (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            } catch {
                preconditionFailure("a 32-byte seed is a valid Ed25519 secret key: \(error)")
            }
        }
        let cluster = context.configuration.clusterIdentifier
        let members = Array(context.configuration.members)
        let count = requestsPerClient ?? 1 + Int(random.next() % 2)
        let clients = (0..<2).map { _ in
            let key = makeKey()
            let targets = random.next() % 3 == 0 ? AtomicBroadcastAdapter.targets(context, random: &random) : members
            let requests = (1...count).map {
                key.request(
                    clusterIdentifier: cluster, sequence: UInt64($0),
                    operation: Self.operation(random: &random).encoded)
            }
            return Scenario.Client(
                id: key.client, key: key, targets: targets.count == 1 ? members : targets, requests: requests)
        }
        let byzantineClient = makeKey()
        func byzantineRequest(_ sequence: UInt64, operation: [UInt8]? = nil) -> [UInt8] {
            var bytes = Self.operation(random: &random).encoded
            if let operation { bytes = operation }
            return byzantineClient.request(clusterIdentifier: cluster, sequence: sequence, operation: bytes).encoded
        }
        // Garbage operation bytes; sequence 2 twice with different operations; sequence 1 again (stale once 2
        // ran); bytes that are no request; a request signed for another cluster (refused).
        let otherCluster = byzantineClient.request(
            clusterIdentifier: identifier(), sequence: 3, operation: Self.operation(random: &random).encoded)
        let byzantine: [[UInt8]] = [
            byzantineRequest(1, operation: [0x09, 0x01, 0x02]), byzantineRequest(2), byzantineRequest(2),
            byzantineRequest(1), [0x00, 0x01, 0x02, 0x03], otherCluster.encoded,
        ]
        let picked = byzantine.filter { _ in random.next() % 2 == 0 }
        let invented = [
            identifier(), makeKey().request(clusterIdentifier: cluster, sequence: 7, operation: Self.keys[0]).encoded,
        ]
        // The forger holds no key of the client: it signs the client's public key and fields with its own.
        let forgedOperation = KeyValueStore.Operation.put(key: Self.keys[0], value: [0xff]).encoded
        let forgedSignature = byzantineClient.request(
            clusterIdentifier: cluster, sequence: 1000, operation: forgedOperation
        ).signature
        let forged = ClientRequest(
            publicKey: clients[0].key.publicKey, sequence: 1000, operation: forgedOperation,
            signature: forgedSignature)
        var limits = AtomicBroadcastAdapter.limits(batchCountMax: batchCountMax ?? 2 + Int(random.next() % 3))
        limits.batchBytesMax = 256 * limits.batchCountMax
        limits.optimistic = optimistic
        // Everything above but the bytes that are no request, the request for another cluster, and the
        // invented bytes that are no request.
        let signedHere = byzantine.filter { $0.count > 4 && $0 != otherCluster.encoded }
        let authentic = Set(clients.flatMap { $0.requests.map(\.encoded) } + signedHere + invented.suffix(1))
        return Scenario(
            clients: clients, byzantineSubmissions: picked.map { Scenario.Submission(bytes: $0, targets: members) },
            authentic: authentic, invented: invented, forged: forged.encoded,
            forgedResult: KeyValueStore.Result.value([0xee]).encoded, limits: limits)
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        let nodeRandom = random.split()
        let broadcast = AtomicBroadcast.Instance(
            configuration: context.configuration, keys: context.keys(of: node), path: context.path,
            random: nodeRandom, limits: scenario.limits, journaling: journaling)
        var scripts = [[UInt8]: [ClientRequest]]()
        for client in scenario.clients where client.targets.contains(node) {
            scripts[client.id] = Array(client.requests.dropFirst())
        }
        return KeyValueReplica(
            broadcast: broadcast, executor: RequestExecutor(machine: KeyValueStore()),
            authenticator: RequestAuthenticator(clusterIdentifier: context.configuration.clusterIdentifier),
            scripts: scripts,
            store: AtomicBroadcastAdapter.store(limits: scenario.limits, journaling: journaling, random: nodeRandom),
            snapshotInterval: AtomicBroadcastAdapter.snapshotInterval(context))
    }

    public var supportsRestart: Bool { true }

    public func describeResumption(_ instance: Instance) -> String {
        AtomicBroadcastAdapter.describeResumption(instance.broadcast)
    }

    public func peerRestarted(_ instance: inout Instance, peer: Int) { instance.peerRestarted(peer) }

    /// A replica rebuilt from `crashed.store` only, as `ReplicaNode` restarts: the executor restored from
    /// the snapshot, the log after it replayed through `KeyValueReplica.apply` (no outputs: the replica
    /// output those rounds before it crashed), atomic broadcast resumed after the last round on disk with
    /// the generator it had, replaying its journal (stage 2; without, silent up to the send horizon).
    /// Each closed-loop client that talks to it has its next request unanswered (the one after the last
    /// the restored executor ran for it), and sends it again; the Byzantine client's requests that are not
    /// in a batch on disk come again too.
    public func restart(
        _ crashed: Instance, node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> (Instance, Effects<Instance.Message, Instance.Output>) {
        let store = crashed.store
        var executor = RequestExecutor(machine: KeyValueStore())
        if let snapshot = store.snapshot {
            do {
                executor = try RequestExecutor(snapshot: snapshot.state)
            } catch {
                preconditionFailure("a snapshot this replica wrote decodes: \(error)")
            }
        }
        var authenticator = RequestAuthenticator(clusterIdentifier: context.configuration.clusterIdentifier)
        for batch in store.logAfterSnapshot {
            _ = KeyValueReplica.apply(batch.requests, executor: &executor, authenticator: &authenticator)
        }
        var scripts = [[UInt8]: [ClientRequest]]()
        var resubmitted = [[UInt8]]()
        for client in scenario.clients where client.targets.contains(node) {
            let done = executor.lastSequence(of: client.id) ?? 0
            let open = client.requests.filter { $0.sequence > done }
            if let next = open.first { resubmitted.append(next.encoded) }
            scripts[client.id] = Array(open.dropFirst())
        }
        resubmitted += scenario.byzantineSubmissions.filter { $0.targets.contains(node) && !store.contains($0.bytes) }
            .map(\.bytes)
        let broadcast = AtomicBroadcast.Instance(
            configuration: context.configuration, keys: context.keys(of: node), path: context.path,
            random: store.random, limits: scenario.limits, journaling: journaling, resuming: store.resumption)
        var restarted = KeyValueReplica(
            broadcast: broadcast, executor: executor, authenticator: authenticator, scripts: scripts, store: store,
            snapshotInterval: crashed.snapshotInterval)
        let effects = restarted.start(resubmitting: resubmitted)
        return (restarted, effects)
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>
    {
        var requests = [[UInt8]]()
        for (index, client) in scenario.clients.enumerated() where client.targets.contains(node) {
            requests.append(client.requests[0].encoded)
            // A retransmission: the first client sends its first request twice.
            if index == 0 { requests.append(client.requests[0].encoded) }
        }
        requests += scenario.byzantineSubmissions.filter { $0.targets.contains(node) }.map(\.bytes)
        return instance.submit(requests)
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Instance.Output> {
        let honest = Set(context.honest)
        let quorum = context.configuration.weakQuorum
        let clientRequests = scenario.clients.filter { $0.targets.filter(honest.contains).count >= quorum }
            .flatMap { $0.requests.map(\.encoded) }
        // Honest replicas refuse unauthentic submissions, so only authentic ones must be delivered.
        let required = clientRequests + scenario.byzantineSubmissions.map(\.bytes).filter(scenario.authentic.contains)
        let allowed = Set(
            scenario.clients.flatMap { $0.requests.map(\.encoded) } + scenario.byzantineSubmissions.map(\.bytes)
                + scenario.invented + [scenario.forged])
        var previous = [[UInt8]: [UInt8]]()
        for client in scenario.clients {
            for (earlier, later) in zip(client.requests, client.requests.dropFirst()) {
                previous[later.encoded] = earlier.encoded
            }
        }
        let byzantine = context.byzantine
        let faulty = context.faulty
        var guarantees = Guarantees<Instance.Output>(allMustOutput: false, totality: false)
        guarantees.order = OrderGuarantees(
            items: { $0.requests }, required: required,
            rejectsItem: { allowed.contains($0) ? nil : "a request nobody submitted" },
            trigger: { previous[$0] },
            checkRun: { rounds in
                KeyValueReference.check(
                    rounds, honest: context.honest, byzantine: byzantine, faulty: faulty, clients: scenario.clients,
                    authentic: scenario.authentic, forgedResult: scenario.forgedResult)
            })
        return guarantees
    }

    public func agreementKey(_ output: KeyValueRound) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(output.round)
        for (request, reply) in zip(output.requests, output.replies) {
            writer.writeVariable(request)
            reply.encode(into: &writer)
        }
        writer.writeFixed(output.digest)
        return writer.bytes
    }

    public func describe(_ output: KeyValueRound) -> String {
        let unauthentic = output.replies.filter { $0 == .unauthentic }.count
        return "round \(output.round): \(output.requests.count) requests"
            + (unauthentic > 0 ? " (\(unauthentic) unauthentic skipped)" : "")
            + ", state \(Hex.encode(output.digest).prefix(12))"
    }

    public func describe(message: Instance.Message) -> String { AtomicBroadcastAdapter.describe(message) }

    public func bufferedMessageCount(_ instance: Instance) -> Int { instance.broadcast.bufferedMessageCount }

    public func bufferedMessageCountMax(context: SimulationContext) -> Int {
        AtomicBroadcastAttacks.bufferedMessageCountMax(replicas: context.replicas, limits: AtomicBroadcast.Limits())
    }

    /// As for `abc`, with a round per request of the closed-loop clients and of the Byzantine client.
    public func terminationStepsMax(context: SimulationContext) -> Int {
        AtomicBroadcastAdapter(requestCount: 2 * (requestsPerClient ?? 2) + 5).terminationStepsMax(context: context)
    }

    // MARK: - Byzantine behaviours

    public var specificBehaviours: [String] { AtomicBroadcastAttacks.behaviours + ["honest", "forge-client"] }

    func attacks(_ view: ByzantineView<Scenario>) -> AtomicBroadcastAttacks {
        AtomicBroadcastAttacks(
            context: view.context, me: view.me, limits: view.scenario.limits, invented: view.scenario.invented)
    }

    public func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory { ByzantineMemory() }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        let attacks = attacks(view)
        if behaviour == "forge-client", case .queue(let round, let queue) = message, queue.member == view.me {
            let kept = queue.requests.prefix(max(0, view.scenario.limits.batchCountMax - 1))
            return [.queue(round: round, attacks.signed(kept + [view.scenario.forged], round: round))]
        }
        return attacks.tamper(message, to: recipient, behaviour: behaviour, memory: &memory, random: &random)
    }

    public func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>] {
        attacks(view).intercept(message, from: sender, behaviour: behaviour, memory: &memory)
    }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        attacks(view).flood(count: count, random: &random)
    }

    public var hasSteering: Bool { true }

    public func makeSteering(scenario: Scenario, context: SimulationContext) -> (any Steering<Instance.Message>)? {
        RotatingStarvation(context: context)
    }
}
