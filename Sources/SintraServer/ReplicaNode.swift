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
/// - client requests into submissions (`submit`): a request this replica proposes first is verified off
///   the actor, together with the others that came meanwhile (one `SignatureBatch`); one it does not
///   propose first is held unverified until it is delivered (and verified at execution) or overdue;
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
///
/// Checkpoints (`Checkpoint`, docs/DURABILITY.md): every `snapshotInterval` rounds the node snapshots its
/// state, signs its digest and sends the vote to its peers (frames at `Checkpoint.path`); n − t matching
/// votes make a stable checkpoint. A node whose own digest differs from a certified one has diverged and
/// stops (`divergedRound`). A node that learns of a stable checkpoint well past its own round (further
/// behind than the peers' catch-up memory can serve) fetches that checkpoint's state from a peer, in
/// chunks, checks it against the certified digest, installs it, and resumes atomic broadcast after it.
public actor ReplicaNode {
    /// The path of the one atomic broadcast instance a replica runs.
    public static let path = InstancePath("abc")

    public let member: Int
    public let configuration: GroupConfiguration
    public let network: ReplicaNetwork
    var instance: AtomicBroadcast.Instance
    /// The executor, the execution chain, and the authenticator (`Execution`).
    var execution: Execution
    let store: ReplicaStore?
    let keys: LocalKeys
    let snapshotInterval: UInt64
    let snapshotWriteEvery: UInt64
    let stateTransferTimeout: Duration
    let fastPathTimeoutBounds: (min: Duration, max: Duration)
    /// The link incarnation each peer's frames last came with (`ReceivedFrame.incarnation`).
    var peerIncarnations: [Int: UInt64] = [:]
    /// When each round's fast-path timer was armed (the round started here), until the round is delivered.
    var timerArmedAt: [UInt64: ContinuousClock.Instant] = [:]
    /// Smoothed time from a round's start to its delivery, in seconds (exponential, weight 1/5).
    var smoothedRoundSeconds = 0.05
    /// How long the last snapshot write into the store took (`saveDueSnapshot`).
    var snapshotWriteSeconds = 0.1
    /// The instance's round counters already added to `statistics` (`countRounds`).
    var countedRounds = (fast: 0, agreed: 0)
    let stateBytesMax: Int
    let stateTransferLag: UInt64
    let forgesServedStates: Bool
    var snapshotRound: UInt64 = 0
    /// The checkpoint whose state is being encoded and digested off the actor (`checkpoint(at:)`), if any.
    var checkpointEncoding: Task<Void, Never>?
    /// A finished checkpoint not yet written into the store, waiting for its turn (`saveDueSnapshot`).
    var unsavedSnapshot: (round: UInt64, state: [UInt8])?
    /// The round of the last batch executed.
    var lastExecutedRound: UInt64 = 0
    /// The highest round of a binding message this node sent (the send horizon, also without a store).
    var sentHorizon: UInt64 = 0
    /// Checkpoint votes and the latest stable checkpoint.
    var votes: CheckpointVotes
    /// This node's digests of its last checkpoints (at most 4), to find a divergence when one is certified.
    var ownDigests: [UInt64: [UInt8]] = [:]
    /// The encoded states of this node's last two checkpoints, served to peers that state-transfer.
    var servedStates: [UInt64: [UInt8]] = [:]
    /// Digests of the requests delivered in the last `deliveredMemoryRounds` rounds, by round: part of the
    /// checkpoint state (`CheckpointState`).
    var recentDigests: [UInt64: [[UInt8]]] = [:]
    var transfer: StateTransfer?
    /// The pending check of catch-up's progress towards a stable checkpoint (`watchCatchUp`).
    var catchUpWatch: Task<Void, Never>?
    let catchUpPatience: Duration
    /// State chunks each peer may still ask for now (`ServeBudget`).
    var serveBudget = ServeBudget()
    var transferRequests: UInt64 = 0
    /// Set until the node installed a checkpoint after `--reseed` (it is silent until then).
    var reseeding: Bool
    /// The round of a certified checkpoint this node's state differs from: it stopped (fail-stop).
    public internal(set) var divergedRound: UInt64?
    /// The store error that stopped this node: a replica that cannot persist takes no further part
    /// (fail-stop), because going on would send messages its disk does not know about.
    public internal(set) var storageFailure: StoreError?
    /// Decoded client keys for verification at submission, off the actor (decoding checks the key's order,
    /// about 40 % of a verification); cleared when `RequestAuthenticator.keyCountMax` is reached.
    let submissionKeys = NIOLockedValueBox([[UInt8]: MemberPublicKey]())
    /// Client requests waiting for their signature check (`submit`), taken in batches by one worker task.
    let admission = NIOLockedValueBox(AdmissionQueue())
    /// Client requests held unverified because this replica is not one of their first proposers.
    var deferred = DeferredRequests()
    /// Set by `shutdown`: submissions are refused from then on.
    var shuttingDown = false
    /// Runs while requests are held back, to find the overdue ones when no round is delivered.
    var sweeper: Task<Void, Never>?
    private let wireLimits: WireLimits
    let logger: Logger
    private var receiving: Task<Void, Never>?
    /// Frames waiting to be handled in one batch (`drainInbox`).
    private let inbox = FrameInbox(capacity: 4096)
    /// Set while `drainInbox` handles a batch: `perform` then only collects, and `flush` commits and sends
    /// once for the whole batch.
    private var batching = false
    /// Effects collected and not yet committed and sent, in order.
    private var outbox: [Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>] = []
    /// Journal entries of the collected effects, committed with them.
    private var journalBuffer: [AtomicBroadcast.JournalEntry] = []
    private var replyHandler: (@Sendable ([ClientReply]) -> Void)?
    public internal(set) var statistics = Statistics()
    /// SHA-256 chain over the executed requests in order: equal at two replicas iff they executed the same
    /// requests in the same order (with overwhelming probability).
    public var executionChain: [UInt8] { execution.chain }

    /// A node for replica `secrets.index` of `cluster`. With `options.store`, restores the state it holds
    /// (throws `StoreError` if it belongs to another replica or does not decode; `Options.Invalid` for options
    /// it cannot run with).
    public init(cluster: ClusterConfiguration, secrets: ReplicaSecrets, options: Options = Options()) throws {
        guard options.snapshotInterval <= options.broadcastLimits.catchUpRounds else {
            throw Options.Invalid.snapshotIntervalOverCatchUpMemory(
                interval: options.snapshotInterval, catchUpRounds: options.broadcastLimits.catchUpRounds)
        }
        let configuration = try GroupConfiguration(cluster: cluster)
        let keys = try LocalKeys(secrets: secrets)
        self.member = secrets.index
        self.configuration = configuration
        self.network = try ReplicaNetwork(configuration: cluster, identity: keys.identity, options: options.network)
        self.store = options.store
        self.keys = keys
        self.snapshotInterval = max(1, options.snapshotInterval)
        self.snapshotWriteEvery = max(1, options.snapshotWriteEvery)
        self.stateTransferTimeout = options.stateTransferTimeout
        self.catchUpPatience = options.catchUpPatience
        self.fastPathTimeoutBounds = (options.fastPathTimeoutMin, options.fastPathTimeoutMax)
        self.stateBytesMax = options.stateBytesMax
        self.stateTransferLag = max(1, options.stateTransferLag ?? options.broadcastLimits.catchUpRounds / 2)
        self.forgesServedStates = options.forgesServedStates
        var resumption: AtomicBroadcast.Instance.Resumption?
        var recovered: Recovered?
        if let store = options.store {
            let owner = ReplicaStore.Owner(clusterIdentifier: cluster.clusterIdentifier, member: secrets.index)
            guard store.owner == owner else {
                throw StoreError.foreignDatabase(path: store.path, expected: owner, found: store.owner)
            }
            recovered = try Recovered(
                store.recover(), configuration: configuration, memory: options.broadcastLimits.deliveredMemoryRounds,
                path: store.path)
            resumption = recovered?.resumption
        }
        let reseeding = options.reseeding || (recovered?.reseeding ?? false)
        self.reseeding = reseeding
        self.sentHorizon = recovered?.sendHorizon ?? 0
        if reseeding {
            // Silent in every round until a checkpoint is installed (`install`): it may have sent anything
            // before its store was lost. Catch-up still delivers, so it follows the cluster meanwhile.
            resumption = AtomicBroadcast.Instance.Resumption(
                nextRound: resumption?.nextRound ?? 1, recentBatches: resumption?.recentBatches ?? [],
                sendHorizon: UInt64(Int64.max),
                recentDigests: resumption?.recentDigests ?? [:])
        }
        self.execution = recovered?.execution ?? Execution(clusterIdentifier: configuration.clusterIdentifier)
        self.votes = CheckpointVotes(configuration: configuration, stable: recovered?.certificate)
        self.recentDigests = recovered?.recentDigests ?? [:]
        // Durable: the journal and a keyed generator let a restarted node replay what it sent (stage 2).
        self.instance = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys, path: ReplicaNode.path,
            random: options.store.map { .keyed(seed: $0.randomSeed) } ?? .system(),
            limits: options.broadcastLimits, journaling: options.store != nil, resuming: resumption)
        // Agreement values carry up to n queues, so a body may be as large as a frame.
        self.wireLimits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: configuration.replicas)
        var logger = options.logger
        logger[metadataKey: "member"] = "\(secrets.index)"
        self.logger = logger
        if let recovered, let served = recovered.servedState {
            servedStates[served.round] = served.state
            ownDigests[served.round] = Checkpoint.digest(
                clusterIdentifier: configuration.clusterIdentifier, round: served.round, state: served.state)
        }
        statistics.stableCheckpointRound = recovered?.certificate?.round ?? 0
        if reseeding { logger.notice("reseeding: silent until a checkpoint is installed from the peers") }
        if let recovered,
            recovered.resumption.nextRound > 1 || recovered.resumption.sendHorizon > 0 || !recovered.resumption.journal.isEmpty
        {
            snapshotRound = recovered.snapshotRound
            statistics.replayedRounds = recovered.replayedRounds
            let replayedEntries = instance.replayedEntryCount
            statistics.replayedJournalEntries = replayedEntries
            logger.info(
                "restored from the replica store",
                metadata: [
                    "snapshotRound": "\(recovered.snapshotRound)", "replayedRounds": "\(recovered.replayedRounds)",
                    "nextRound": "\(recovered.resumption.nextRound)",
                    "journalEntries": "\(replayedEntries)",
                    "silentThrough": "\(recovered.resumption.sendHorizon)",
                ])
            if let store = options.store, !store.journalTrusted {
                logger.warning(
                    "the protocol journal was written before a reboot and may be incomplete; dropped it, silent up to the send horizon",
                    metadata: ["silentThrough": "\(recovered.resumption.sendHorizon)"])
            }
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
        // A restarted replica may be further behind than catch-up can serve: the peers' latest stable
        // checkpoint tells (`considerTransfer`).
        sendCheckpoint(.certificateRequest, to: nil)
        let frames = network.frames
        let inbox = self.inbox
        receiving = Task { [weak self] in
            for await received in frames {
                if inbox.put(received) {
                    guard let self else { return }
                    Task { await self.drainInbox() }
                }
                await inbox.waitForRoom()
            }
        }
    }

    /// Stops the network; the receiving task ends when its stream finishes. Submissions still waiting are
    /// refused as `.unavailable`.
    public func shutdown() async {
        shuttingDown = true
        for submission in deferred.removeAll() { submission.resolve(.refused(.unavailable)) }
        sweeper?.cancel()
        sweeper = nil
        catchUpWatch?.cancel()
        catchUpWatch = nil
        // A checkpoint still being encoded finds `shuttingDown` set and stores nothing.
        await checkpointEncoding?.value
        await network.shutdown()
        inbox.release()
        await receiving?.value
        receiving = nil
    }

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

    /// Checkpoint votes held (bounded by `CheckpointVotes.roundsPerMember` per member).
    var heldCheckpointVotes: Int { votes.heldVoteCount }
    /// The latest stable checkpoint this node knows.
    public var stableCheckpoint: StableCheckpoint? { votes.stable }

    /// Whether the node stopped taking part: its store failed, or its state diverged from a certified one.
    public var isStopped: Bool { storageFailure != nil || divergedRound != nil }

    /// Handles every frame waiting in the inbox, then commits and sends once for all of them.
    private func drainInbox() {
        let frames = inbox.take()
        guard !frames.isEmpty else { return }
        batching = true
        for received in frames { receive(received) }
        batching = false
        flush()
    }

    private func receive(_ received: ReceivedFrame) {
        guard !isStopped else { return }
        if received.sender != member, peerIncarnations[received.sender] != received.incarnation {
            // A peer that restarted lost what was in flight to it: its catch-up answers count anew.
            if peerIncarnations[received.sender] != nil {
                statistics.peerRestarts += 1
                instance.peerRestarted(received.sender)
            }
            peerIncarnations[received.sender] = received.incarnation
        }
        if received.frame.path == Checkpoint.path {
            guard let message = try? CheckpointMessage(encoded: received.frame.body, limits: wireLimits) else {
                statistics.malformedFrames += 1
                logger.debug("dropped malformed checkpoint frame", metadata: ["sender": "\(received.sender)"])
                return
            }
            receiveCheckpoint(message, from: received.sender)
            return
        }
        guard received.frame.path == ReplicaNode.path,
            let message = try? AtomicBroadcast.Message(encoded: received.frame.body, limits: wireLimits)
        else {
            statistics.malformedFrames += 1
            logger.debug("dropped malformed frame", metadata: ["sender": "\(received.sender)"])
            return
        }
        perform(instance.handle(message, from: received.sender))
    }

    /// Collects the effects of one call into the instance, with the journal entries it recorded, and
    /// flushes them at once unless a batch of frames is being handled (`drainInbox` flushes at its end).
    func perform(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) {
        if !effects.outputs.isEmpty { countRounds() }
        outbox.append(effects)
        if instance.journaling { journalBuffer += instance.takeJournal() }
        if !batching { flush() }
    }

    /// Persists the collected journal entries, delivered batches and send horizon in one transaction, then
    /// sends the messages, records the faults, and executes the batches in order. Persisting first is what
    /// makes a restart safe: a reply or a message never gets ahead of the disk, and a restarted node can
    /// replay everything its messages followed from.
    ///
    /// Journal entries whose effects send nothing binding and deliver nothing stay in memory until the next
    /// commit: nothing that left depends on them, so losing them in a crash is the same as never having
    /// received those frames (the peers' catch-up and re-sending cover that), and most frames (a vote that
    /// does not reach a threshold) then cost no transaction at all.
    func flush() {
        while !outbox.isEmpty {
            let collected = outbox
            outbox = []
            let binding = collected.contains { effects in
                !effects.outputs.isEmpty || effects.messages.contains { AtomicBroadcast.bindingRound(of: $0.message) != nil }
            }
            if binding || store == nil {
                let journal = journalBuffer
                journalBuffer = []
                guard persist(collected, journal: journal) else { return }
            }
            for effects in collected {
                release(effects)
                if isStopped { return }
            }
        }
    }

    /// Sends, records and executes one call's effects (already persisted).
    private func release(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) {
        for outgoing in effects.messages {
            if case .timeout(let timerRound) = outgoing.message {
                armFastPathTimer(timerRound)
                continue
            }
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
            recordFault(fault.kind, "\(fault)")
        }
        for batch in effects.outputs {
            if let armed = timerArmedAt.removeValue(forKey: batch.round) {
                let elapsed = armed.duration(to: .now)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                smoothedRoundSeconds += (seconds - smoothedRoundSeconds) / 5
            }
            execute(batch)
            lastExecutedRound = batch.round
            if unsavedSnapshot != nil { saveDueSnapshot() }
            if batch.round % snapshotInterval == 0 { checkpoint(at: batch.round) }
            // A checkpoint found a divergence: execute nothing more.
            if isStopped { return }
        }
        if let last = effects.outputs.last, !deferred.isEmpty { takeOverdue(deliveredRound: last.round) }
    }

    /// Adds the rounds the instance decided since the last call to the statistics (an instance replaced after
    /// state transfer counts from zero again).
    private func countRounds() {
        if instance.fastRoundCount < countedRounds.fast || instance.agreedRoundCount < countedRounds.agreed {
            countedRounds = (0, 0)
        }
        statistics.fastPathRounds += instance.fastRoundCount - countedRounds.fast
        statistics.agreementRounds += instance.agreedRoundCount - countedRounds.agreed
        countedRounds = (instance.fastRoundCount, instance.agreedRoundCount)
    }

    /// Hands the instance its timer for `timerRound` after four smoothed round times (within the options'
    /// bounds). The instance ignores it if the round is over by then.
    private func armFastPathTimer(_ timerRound: UInt64) {
        if timerArmedAt[timerRound] == nil {
            timerArmedAt = timerArmedAt.filter { $0.key + 8 > timerRound }
            timerArmedAt[timerRound] = .now
        }
        let delay = min(max(.seconds(4 * smoothedRoundSeconds), fastPathTimeoutBounds.min), fastPathTimeoutBounds.max)
        Task { [weak self] in
            try? await Task.sleep(for: delay)
            await self?.fastPathTimerFired(timerRound, deferrals: 0)
        }
    }

    /// A timer that comes due while frames wait in the inbox (this node was busy, e.g. writing a snapshot)
    /// waits for them first, a few times: they may finish the round, and the timer measures the peers, not
    /// this node's own stall.
    private func fastPathTimerFired(_ timerRound: UInt64, deferrals: Int) {
        guard !isStopped, instance.round == timerRound else { return }
        if deferrals < 8, inbox.count > 0 {
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(5))
                await self?.fastPathTimerFired(timerRound, deferrals: deferrals + 1)
            }
            return
        }
        statistics.fastPathTimeouts += 1
        perform(instance.handle(.timeout(round: timerRound), from: member))
    }

    func recordFault(_ kind: Fault.Kind, _ description: String) {
        statistics.faults += 1
        statistics.faultsByKind[kind.rawValue, default: 0] += 1
        logger.warning("peer fault", metadata: ["fault": "\(description)"])
    }

    /// One transaction for all delivered batches and journal entries (group commit) that also raises the
    /// send horizon to the highest round of a binding message about to be sent (a queue or an agreement
    /// message, `AtomicBroadcast.bindingRound(of:)`). The journal lets a restarted node replay those
    /// messages; the horizon is what it stays silent up to if the journal cannot be trusted
    /// (`ReplicaStore.journalTrusted`). The journal keeps the rounds a resumed instance rebuilds (from
    /// `futureRoundWindow` + 1 below the next round). Returns false, and stops the node, if the store failed.
    private func persist(
        _ collected: [Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>], journal: [AtomicBroadcast.JournalEntry]
    ) -> Bool {
        guard !isStopped else { return false }
        var horizon: UInt64 = 0
        var outputs = [AtomicBroadcast.Batch]()
        for effects in collected {
            for outgoing in effects.messages {
                if let round = AtomicBroadcast.bindingRound(of: outgoing.message) { horizon = max(horizon, round) }
            }
            outputs += effects.outputs
        }
        sentHorizon = max(sentHorizon, horizon)
        guard let store else { return true }
        guard !outputs.isEmpty || horizon > store.sendHorizon || !journal.isEmpty else { return true }
        let window = instance.limits.futureRoundWindow
        let next = (outputs.last?.round ?? 0) + 1
        do {
            try store.commit(
                outputs.map { ReplicaStore.LogEntry(round: $0.round, batch: ReplicaNode.encode($0.requests)) },
                sendHorizon: horizon,
                journal: journal.map { ReplicaStore.JournalRecord(round: $0.round, entry: $0.encoded) },
                journalKeptFrom: next > window + 1 ? next - window - 1 : 0)
            statistics.journalEntries += journal.count
            return true
        } catch {
            storageFailure = error
            logger.critical("replica store failed; this replica stops", metadata: ["error": "\(error)"])
            return false
        }
    }

    func resumeInstance(nextRound: UInt64, silentThrough: UInt64) {
        // What the old instance did is committed and sent first; its journal then no longer applies.
        flush()
        if let store {
            do {
                try store.resetJournal(silentThrough: max(silentThrough, nextRound))
                journalBuffer = []
            } catch {
                storageFailure = error
                logger.critical("replica store failed; this replica stops", metadata: ["error": "\(error)"])
                return
            }
        }
        instance = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys, path: ReplicaNode.path,
            random: store.map { .keyed(seed: $0.randomSeed) } ?? .system(),
            limits: instance.limits, journaling: store != nil,
            resuming: AtomicBroadcast.Instance.Resumption(
                nextRound: nextRound, recentBatches: [], sendHorizon: max(silentThrough, nextRound),
                recentDigests: recentDigests))
        sentHorizon = max(sentHorizon, silentThrough)
        perform(instance.start())
    }

    private func execute(_ batch: AtomicBroadcast.Batch) {
        statistics.batches += 1
        statistics.deliveredRequests += batch.requests.count
        // Atomic broadcast hashed the requests to deliver them; a batch without digests is hashed here.
        let digests = batch.digests.isEmpty ? batch.requests.map(AtomicBroadcast.digest) : batch.digests
        recentDigests[batch.round] = digests
        let memory = instance.limits.deliveredMemoryRounds
        if UInt64(recentDigests.count) > memory, batch.round >= memory {
            recentDigests = recentDigests.filter { $0.key > batch.round - memory }
        }
        let outcome = execution.execute(batch.requests, attested: batch.attested)
        statistics.malformedRequests += outcome.malformed
        statistics.unauthenticRequests += outcome.unauthentic
        statistics.executionVerifications += outcome.verifications
        statistics.attestedRequests += outcome.attested
        resolveDeferred(delivered: digests)
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
        /// the counts of skipped requests. `attested` (`AtomicBroadcast.Batch.attested`, empty or one flag per
        /// request) marks requests t + 1 members queued: an honest replica checked their signatures.
        mutating func execute(_ requests: [[UInt8]], attested: [Bool] = [])
            -> (replies: [ClientReply], malformed: Int, unauthentic: Int, verifications: Int, attested: Int)
        {
            var replies = [ClientReply]()
            replies.reserveCapacity(requests.count)
            var malformed = 0
            var unauthentic = 0
            let before = authenticator.verifications
            let attestedBefore = authenticator.attestedSkips
            let authenticated = authenticator.authenticate(batch: requests, attested: attested)
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
                case .stale, .replyNotKept:
                    break
                }
            }
            return (
                replies, malformed, unauthentic, Int(authenticator.verifications - before),
                Int(authenticator.attestedSkips - attestedBefore)
            )
        }
    }

}
