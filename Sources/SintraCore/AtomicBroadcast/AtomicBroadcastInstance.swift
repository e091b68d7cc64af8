import Crypto
import SintraCrypto

extension AtomicBroadcast {
    /// Atomic broadcast at one party. Submit requests with `submit`; batches come out as outputs, the
    /// same batches in the same order at every honest party.
    public struct Instance: ProtocolInstance {
        public typealias Output = Batch

        public let path: InstancePath
        public let configuration: GroupConfiguration
        public let me: Int
        public let limits: Limits
        let keys: LocalKeys
        /// The generator the agreements' generators derive from, one per round (`ProtocolRandom.derive`), so
        /// that a replay rebuilds each round's agreement with the same one.
        let random: ProtocolRandom
        /// Whether the instance records its `JournalEntry`s for `takeJournal()`.
        public let journaling: Bool
        /// Queue signatures verified here, shared with the agreements' predicates (kept for the rounds of
        /// `queues`).
        let verifiedQueues: VerifiedQueueSignatures
        /// Entries recorded since the last `takeJournal()`.
        var journal: [JournalEntry] = []
        /// The messages the replay of `Resumption.journal` produced, sent again by `start()`.
        var replayed = Effects<Message, Output>()
        /// Journal entries replayed at `init(resuming:)`.
        public internal(set) var replayedEntryCount = 0

        /// The round being decided.
        public internal(set) var round: UInt64 = 1
        /// A submitted, undelivered request, and the first round whose queue was built while it was pending.
        struct PendingRequest {
            let digest: [UInt8]
            let request: [UInt8]
            var firstQueueRound: UInt64?
        }

        /// Submitted, undelivered requests in submission order, and their digests.
        var pending: [PendingRequest] = []
        var pendingDigests: Set<ByteKey> = []
        /// Digests of delivered requests with the round that delivered them (pruned after
        /// `deliveredMemoryRounds`).
        var delivered: [ByteKey: UInt64] = [:]
        /// The same digests by round, so that forgetting a round touches only its own digests (filtering
        /// all of `delivered` every round cost about a tenth of a replica's CPU under load).
        var deliveredByRound: [UInt64: [[UInt8]]] = [:]
        var sentQueue: Set<UInt64> = []
        var proposedRound: Set<UInt64> = []
        /// Valid queues per round (current and up to `futureRoundWindow` ahead), first per member.
        var queues: [UInt64: [Int: SignedQueue]] = [:]
        var agreements: [UInt64: ValidatedAgreement.Instance] = [:]
        /// Messages dropped for being too far ahead; a party that drops one catches up by asking its peers.
        public internal(set) var droppedMessageCount = 0
        /// Batches delivered in recent rounds (the last `Limits.catchUpRounds`, within
        /// `catchUpMemoryBytesMax`), to answer laggards; after a restart, filled from the batches on disk
        /// (`Resumption.recentBatches`), so a restarted party answers for rounds it delivered before its
        /// restart too. Their bytes, and the oldest round that may still be here (`forgetDeliveredBatches`).
        var deliveredBatches: [UInt64: [[UInt8]]] = [:]
        var deliveredBatchBytes = 0
        var oldestDeliveredBatch: UInt64 = 0
        /// The round for which we last asked for catch-up, and the answers for the current round: each
        /// responder's vector (first answer counts), at most n entries.
        var catchUpRequestedRound: UInt64 = 0
        var catchUpAnswers: [Int: [[UInt8]]] = [:]
        /// Answers sent, per round and peer, at most `Limits.catchUpAnswersPerPeerMax` each per life of the
        /// peer (a peer that restarted asks for the same round again; `peerRestarted` starts its count anew).
        var catchUpAnswered: [UInt64: [Int: Int]] = [:]
        /// Requests for rounds not decided here yet: the latest round each peer asked for (at most n
        /// entries), answered when this party delivers it. A laggard asks once per round, so an early
        /// request must not be forgotten.
        var catchUpWaiting: [Int: UInt64] = [:]
        /// The highest round whose messages this party dropped, at most `Limits.catchUpRounds` ahead of
        /// it: the parties ahead will not resend them, so every round up to it is caught up (asked for when
        /// entered), whether the party got there by catch-up or by agreement. A Byzantine peer can raise it
        /// with one far-future message; that costs at most one request and n answers per round.
        var catchUpHorizon: UInt64 = 0
        /// Rounds delivered through catch-up instead of agreement.
        public internal(set) var caughtUpRoundCount = 0
        /// This party's binding messages (queues, agreement messages) with their recipients, by round, for the
        /// rounds whose agreements it keeps (from `round` − `futureRoundWindow` − 1 on, as `agreements`): sent
        /// again to a peer that asks for one of those rounds before this party delivered it
        /// (docs/DURABILITY.md, "Stage 2": a peer that crashed lost what was in flight to it).
        var sentBinding: [UInt64: [Outgoing<Message>]] = [:]
        /// Resends per round and peer, at most `Limits.catchUpAnswersPerPeerMax` each; only rounds in
        /// `sentBinding` have entries, so at most (window + 2) × n.
        var resent: [UInt64: [Int: Int]] = [:]
        /// Own messages sent again to peers that asked for a round not delivered here.
        public internal(set) var resentMessageCount = 0
        /// Fast-path state per round (`FastPath.swift`), for the rounds whose agreements are kept and those
        /// up to `futureRoundWindow` ahead.
        var fast: [UInt64: FastRound] = [:]
        /// Per member: rounds it led in a row that fell back here, and how many of its next rounds this
        /// party leaves at once instead of waiting for its timer (suspicion: local, it only saves time).
        var leaderFallbacks: [Int: Int] = [:]
        /// Per member: the last round it gave up leading (`FastMessage.abdicate`); its substitute proposes
        /// in its rounds up to there. At most n entries.
        var abdicatedThrough: [Int: UInt64] = [:]
        var leaderSkips: [Int: Int] = [:]
        /// Rounds this party delivered from its fast path.
        public internal(set) var fastRoundCount = 0
        /// Rounds this party delivered from a fallback agreement (the fast path stopped, or was off).
        public internal(set) var agreedRoundCount = 0
        /// Rounds up to this one are silent: this party may have sent messages in them before a restart and
        /// has forgotten what, so it sends no queue and takes no part in their agreements (it could
        /// contradict itself); it delivers them by catch-up only. 0 for a party that never restarted.
        public let silentThrough: UInt64

        /// Where a restarted party resumes (docs/DURABILITY.md): the first round it has not delivered, the
        /// batches it delivered in the rounds before (the last `deliveredMemoryRounds` of them are enough
        /// for deduplication, the last `catchUpRounds` for answering laggards), and its persisted send
        /// horizon, the highest round it may have sent a binding message for
        /// (`AtomicBroadcast.bindingRound(of:)`). Rounds up to the horizon are silent (`silentThrough`); a
        /// horizon below `nextRound` leaves none.
        ///
        /// A party that installed a checkpoint by state transfer has no batches before it, only the digests
        /// of the requests delivered in its last rounds (part of the certified checkpoint state):
        /// `recentDigests`, round → digests, serves the same deduplication as `recentBatches`.
        public struct Resumption: Sendable {
            public var nextRound: UInt64
            public var recentBatches: [Batch]
            public var sendHorizon: UInt64
            public var recentDigests: [UInt64: [[UInt8]]]
            /// The journal the party committed before it sent (`JournalEntry`, stage 2), in order. Entries of
            /// rounds before `nextRound − futureRoundWindow − 1` are ignored. With a complete journal the
            /// send horizon can be 0: the party rebuilds what it sent instead of staying silent.
            public var journal: [JournalEntry]

            public init(
                nextRound: UInt64, recentBatches: [Batch], sendHorizon: UInt64, recentDigests: [UInt64: [[UInt8]]] = [:],
                journal: [JournalEntry] = []
            ) {
                self.nextRound = nextRound
                self.recentBatches = recentBatches
                self.sendHorizon = sendHorizon
                self.recentDigests = recentDigests
                self.journal = journal
            }
        }

        public init(
            configuration: GroupConfiguration, keys: LocalKeys, path: InstancePath, random: ProtocolRandom,
            limits: Limits = Limits(), journaling: Bool = false, resuming resumption: Resumption? = nil
        ) {
            self.configuration = configuration
            self.keys = keys
            self.me = keys.index
            self.path = path
            self.verifiedQueues = VerifiedQueueSignatures(path: path)
            self.random = random
            self.limits = limits
            self.journaling = journaling
            guard let resumption else {
                silentThrough = 0
                return
            }
            round = max(1, resumption.nextRound)
            silentThrough = resumption.sendHorizon
            // Every silent round must be caught up: the peers will not wait for this party. So must every
            // round whose messages it may have held when it crashed (up to `futureRoundWindow` ahead of
            // the round it was in): they are lost with its memory, as if dropped, and the peers will not
            // send them again, so without catch-up it could wait in such a round for ever.
            let (ahead, overflow) = round.addingReportingOverflow(limits.futureRoundWindow)
            catchUpHorizon = max(resumption.sendHorizon, overflow ? round : ahead)
            let oldest = round > limits.deliveredMemoryRounds ? round - limits.deliveredMemoryRounds : 0
            let oldestKept = round > limits.catchUpRounds ? round - limits.catchUpRounds : 0
            for batch in resumption.recentBatches where batch.round >= oldestKept && batch.round < round {
                if batch.round >= oldest {
                    rememberDelivered(batch.requests.map(AtomicBroadcast.digest), round: batch.round)
                }
                keepDeliveredBatch(batch.requests, round: batch.round)
            }
            oldestDeliveredBatch = deliveredBatches.keys.min() ?? round
            forgetDeliveredBatches()
            for (digestRound, digests) in resumption.recentDigests where digestRound >= oldest && digestRound < round {
                rememberDelivered(digests, round: digestRound)
            }
            for entry in resumption.journal { replay(entry) }
            keep(replayed.messages)
        }

        /// Applies one journal entry as it was applied before the restart, collecting the messages it makes
        /// (sent again by `start()`; peers drop a byte-equal duplicate). Faults were recorded the first time.
        /// The agreements of the `futureRoundWindow` + 1 rounds before `round` are rebuilt too, as
        /// `collectGarbage` keeps them, so the party still helps slower peers finish them.
        mutating func replay(_ entry: JournalEntry) {
            let oldestAgreement = round > limits.futureRoundWindow + 1 ? round - limits.futureRoundWindow - 1 : 0
            guard entry.round >= oldestAgreement else { return }
            replayedEntryCount += 1
            switch entry {
            case .sentQueue(let queueRound, let queue):
                guard queueRound >= round else { return }
                sentQueue.insert(queueRound)
                replayed.broadcast(.queue(round: queueRound, queue))
                if limits.optimistic, queueRound == round { replayed.send(.timeout(round: round), to: .node(me)) }
            case .fastProposal(let fastRound, let vector):
                fast[fastRound, default: FastRound()].proposed = true
                replayed.broadcast(.fast(round: fastRound, .propose(vector: vector)))
            case .fastVote(let fastRound, let digest):
                fast[fastRound, default: FastRound()].votedDigest = digest
                replayed.broadcast(voteMessage(fastRound, digest: digest))
            case .fastLock(let fastRound, let lock, let vector):
                var state = fast[fastRound] ?? FastRound()
                state.lock = lock
                state.knownLock = lock
                state.lockedVector = vector
                fast[fastRound] = state
                replayed.broadcast(.fast(round: fastRound, .commit(digest: lock.digest)))
            case .fastStop(let fastRound):
                var state = fast[fastRound] ?? FastRound()
                state.stopped = true
                fast[fastRound] = state
                replayed.broadcast(stopMessage(fastRound, state))
            case .receivedQueue(let queueRound, let node, let queue):
                guard queueRound >= round, queues[queueRound]?[node] == nil else { return }
                queues[queueRound, default: [:]][node] = queue
            case .agreementMessage(let agreementRound, let node, let message):
                var agreement = agreements[agreementRound] ?? makeAgreement(agreementRound)
                let child = agreement.handle(message, from: node)
                agreements[agreementRound] = agreement
                replayed.messages.append(
                    contentsOf: child.lifted(
                        message: { Message.agreement(round: agreementRound, $0) }, output: { _ -> Output? in nil }
                    ).messages)
            case .proposal(let agreementRound, let value):
                proposedRound.insert(agreementRound)
                var agreement = agreements[agreementRound] ?? makeAgreement(agreementRound)
                let child = agreement.propose(value)
                agreements[agreementRound] = agreement
                replayed.messages.append(
                    contentsOf: child.lifted(
                        message: { Message.agreement(round: agreementRound, $0) }, output: { _ -> Output? in nil }
                    ).messages)
            }
        }

        /// The journal entries recorded since the last call (none unless `journaling`). A party that
        /// journals commits them, with the effects of the same call, before it sends those effects' messages.
        public mutating func takeJournal() -> [JournalEntry] {
            defer { journal.removeAll(keepingCapacity: true) }
            return journal
        }

        /// Whether this party may send its own messages of `someRound` (its queue, agreement votes).
        func mayTakePart(in someRound: UInt64) -> Bool { someRound > silentThrough }

        /// Starts catch-up for a resumed party's first round (call once after `init(resuming:)`): a silent
        /// round makes no progress on its own.
        public mutating func start() -> Effects<Message, Output> {
            var effects = replayed
            replayed = Effects()
            advance(&effects)
            return effects
        }

        /// Atomic broadcast never finishes; it is finished for the simulator once nothing is pending.
        public var isFinished: Bool { pending.isEmpty }

        public var pendingCount: Int { pending.count }

        /// Messages and instances held for future and recent rounds (bounded by the window).
        public var bufferedMessageCount: Int {
            queues.filter { $0.key > round }.reduce(0) { $0 + $1.value.count } + agreements.count
                + fast.filter { $0.key > round }.reduce(0) { $0 + $1.value.messageCount }
        }

        public enum SubmitResult: Sendable, Equatable {
            case accepted, duplicate, tooLarge, queueFull
        }

        /// Adds a client request to this party's queue.
        public mutating func submit(_ request: [UInt8]) -> (SubmitResult, Effects<Message, Output>) {
            let (results, effects) = submit(batch: [request])
            return (results[0], effects)
        }

        /// Adds several client requests to this party's queue, in order, and only then starts the round if
        /// it has not started: a replica that admits requests in batches (after checking their client
        /// signatures together) puts the whole batch into one queue instead of sending a queue of the first.
        ///
        /// `passedOver`: the requests go into this party's next queue whether or not it is one of their first
        /// proposers, as if a round had passed them over (`signedQueue`). A replica that held a request back
        /// because it is not a first proposer (it need not check the client's signature then) submits it so
        /// once a round went by without its delivery.
        public mutating func submit(batch requests: [[UInt8]], passedOver: Bool = false)
            -> ([SubmitResult], Effects<Message, Output>)
        {
            var effects = Effects<Message, Output>()
            var results = [SubmitResult]()
            results.reserveCapacity(requests.count)
            for request in requests {
                results.append(enqueue(request, digest: AtomicBroadcast.digest(request), passedOver: passedOver))
            }
            if results.contains(.accepted) { advance(&effects) }
            return (results, effects)
        }

        mutating func enqueue(_ request: [UInt8], digest: [UInt8], passedOver: Bool) -> SubmitResult {
            // A request that cannot fit a queue on its own would block the queue for ever.
            guard request.count <= limits.submittableBytesMax(replicas: configuration.replicas) else { return .tooLarge }
            guard !knows(digest) else { return .duplicate }
            guard pending.count < limits.pendingCountMax else { return .queueFull }
            pending.append(PendingRequest(digest: digest, request: request, firstQueueRound: passedOver ? 0 : nil))
            pendingDigests.insert(ByteKey(digest))
            return .accepted
        }

        /// Whether the request with `digest` (`AtomicBroadcast.digest`) is pending here or was delivered in
        /// the last `deliveredMemoryRounds` rounds (submitting it would return `.duplicate`).
        public func knows(_ digest: [UInt8]) -> Bool {
            delivered[ByteKey(digest)] != nil || pendingDigests.contains(ByteKey(digest))
        }

        /// The round of the next queue this party will send: a request submitted now goes first into that
        /// queue if this party is one of its proposers there (`AtomicBroadcast.isProposer`).
        public var nextQueueRound: UInt64 {
            sentQueue.contains(round) || !mayTakePart(in: round) ? round + 1 : round
        }

        public mutating func handle(_ message: Message, from node: Int) -> Effects<Message, Output> {
            var effects = Effects<Message, Output>()
            guard configuration.isMember(node) else { return effects }
            switch message {
            case .queue(let queueRound, let queue):
                guard queueRound >= round, mayTakePart(in: queueRound) else { return effects }
                guard queueRound <= round + limits.futureRoundWindow else {
                    droppedMessageCount += 1
                    raiseCatchUpHorizon(to: queueRound)
                    advance(&effects)
                    return effects
                }
                guard queue.member == node else {
                    effects.fault(node, path, .notAllowed, "a-queue signed by \(queue.member) sent by \(node)")
                    return effects
                }
                guard queues[queueRound]?[node] == nil else { return effects }
                guard
                    AtomicBroadcast.isValid(
                        queue, round: queueRound, path: path, configuration: configuration, limits: limits,
                        verified: verifiedQueues)
                else {
                    effects.fault(node, path, .invalidProof, "a-queue with a bad signature or over the caps")
                    return effects
                }
                queues[queueRound, default: [:]][node] = queue
                if journaling { journal.append(.receivedQueue(round: queueRound, from: node, queue)) }
            case .agreement(let agreementRound, let inner):
                // Agreements of the last `futureRoundWindow` + 1 rounds are still served; older ones are gone.
                guard agreementRound >= round || agreements[agreementRound] != nil, mayTakePart(in: agreementRound)
                else { return effects }
                guard agreementRound <= round + limits.futureRoundWindow else {
                    droppedMessageCount += 1
                    raiseCatchUpHorizon(to: agreementRound)
                    advance(&effects)
                    return effects
                }
                if journaling { journal.append(.agreementMessage(round: agreementRound, from: node, inner)) }
                var agreement = agreements[agreementRound] ?? makeAgreement(agreementRound)
                let child = agreement.handle(inner, from: node)
                agreements[agreementRound] = agreement
                let lifted = child.lifted(message: { Message.agreement(round: agreementRound, $0) }, output: { _ -> Output? in nil })
                keep(lifted.messages)
                effects.append(lifted)
            case .catchUpRequest(let requestedRound):
                answerCatchUp(requestedRound, to: node, &effects)
            case .catchUpResponse(let answeredRound, let highestRound, let batch):
                receiveCatchUp(answeredRound, highestRound: highestRound, batch: batch, from: node, &effects)
            case .fast(let fastRound, let inner):
                handleFast(inner, round: fastRound, from: node, &effects)
            case .timeout(let timerRound):
                // Only this party's own shell arms its timers.
                guard node == me else { return effects }
                handleTimeout(timerRound, &effects)
            }
            advance(&effects)
            return effects
        }

        mutating func makeAgreement(_ agreementRound: UInt64) -> ValidatedAgreement.Instance {
            let path = self.path
            let configuration = self.configuration
            let limits = self.limits
            let verified = verifiedQueues
            return ValidatedAgreement.Instance(
                configuration: configuration, keys: keys, path: path.child("round", agreementRound),
                random: random.derive(Array("round".utf8) + withUnsafeBytes(of: agreementRound.bigEndian, Array.init)),
                predicate: { value in
                    if limits.optimistic {
                        return AtomicBroadcast.validFallback(
                            value, round: agreementRound, path: path, configuration: configuration, limits: limits,
                            verified: verified) != nil
                    }
                    return AtomicBroadcast.validVector(
                        value, round: agreementRound, path: path, configuration: configuration, limits: limits,
                        verified: verified) != nil
                })
        }

        mutating func advance(_ effects: inout Effects<Message, Output>) {
            while true {
                // Messages of this round were dropped: only catch-up is sure to finish it.
                if round <= catchUpHorizon { requestCatchUp(&effects) }
                // Start the round when we have work or someone else started it.
                if mayTakePart(in: round), !sentQueue.contains(round), !pending.isEmpty || !(queues[round] ?? [:]).isEmpty {
                    sentQueue.insert(round)
                    let queue = signedQueue()
                    if journaling { journal.append(.sentQueue(round: round, queue)) }
                    keep([Outgoing(.queue(round: round, queue), to: .all)])
                    effects.broadcast(.queue(round: round, queue))
                    startFast(&effects)
                }
                if limits.optimistic {
                    if let vector = advanceFast(&effects) {
                        fastRoundCount += 1
                        deliver(vector, &effects)
                        continue
                    }
                    if var state = fast[round] {
                        joinFallback(round, &state, &effects)
                        fast[round] = state
                    }
                } else if mayTakePart(in: round), !proposedRound.contains(round), let collected = queues[round],
                    collected.count >= configuration.quorum
                {
                    proposedRound.insert(round)
                    let vector = collected.keys.sorted().map { collected[$0]! }
                    let value = AtomicBroadcast.encodeVector(vector)
                    if journaling { journal.append(.proposal(round: round, value: value)) }
                    var agreement = agreements[round] ?? makeAgreement(round)
                    let child = agreement.propose(value)
                    agreements[round] = agreement
                    let current = round
                    let lifted = child.lifted(message: { Message.agreement(round: current, $0) }, output: { _ -> Output? in nil })
                    keep(lifted.messages)
                    effects.append(lifted)
                }
                guard let decision = agreements[round]?.output else { return }
                agreedRoundCount += 1
                if limits.optimistic {
                    // The predicate held, so the proposal decodes.
                    let wire = WireLimits(payloadBytesMax: limits.vectorBytesMax, memberCount: configuration.replicas)
                    guard let proposal = try? FallbackProposal(encoded: decision.value, limits: wire) else {
                        preconditionFailure("a decided fallback proposal decodes")
                    }
                    deliver(proposal.vector, &effects)
                } else {
                    deliver(decision.value, &effects)
                }
            }
        }

        /// This round's queue: the pending requests this party is a proposer of (`AtomicBroadcast.isProposer`),
        /// and every request already passed over in an earlier round's queue, in submission order up to the caps.
        mutating func signedQueue() -> SignedQueue {
            var batch = [[UInt8]]()
            var bytes = 0
            let queueBytesMax = limits.queueBytesMax(replicas: configuration.replicas)
            for index in pending.indices {
                let request = pending[index].request
                guard batch.count < limits.batchCountMax, bytes + request.count <= queueBytesMax else { break }
                let passedOver = pending[index].firstQueueRound.map { $0 < round } ?? false
                if pending[index].firstQueueRound == nil { pending[index].firstQueueRound = round }
                let digest = pending[index].digest
                guard passedOver || AtomicBroadcast.isProposer(me, of: digest, round: round, configuration: configuration)
                else { continue }
                batch.append(request)
                bytes += request.count
            }
            let statement = AtomicBroadcast.queueStatement(path: path, round: round, requests: batch)
            return SignedQueue(member: me, requests: batch, signature: keys.identity.sign(statement))
        }

        /// Delivers the decided vector's new requests, sorted by digest, and moves to the next round.
        mutating func deliver(_ value: [UInt8], _ effects: inout Effects<Message, Output>) {
            // The predicate held when the value was decided (or checked on catch-up), so the vector decodes
            // and its signatures need no second check.
            guard let vector = AtomicBroadcast.validVector(
                value, round: round, path: path, configuration: configuration, limits: limits, verifySignatures: false)
            else { preconditionFailure("a decided vector satisfies the round predicate") }
            // Per new request: the request and the members whose queues carry it (`Batch.attested`).
            var fresh: [ByteKey: (request: [UInt8], carriers: [Int])] = [:]
            for queue in vector {
                for request in queue.requests {
                    let digest = ByteKey(AtomicBroadcast.digest(request))
                    if var known = fresh[digest] {
                        guard !known.carriers.contains(queue.member) else { continue }
                        known.carriers.append(queue.member)
                        fresh[digest] = known
                    } else if delivered[digest] == nil {
                        fresh[digest] = (request, [queue.member])
                    }
                }
            }
            // The valid queues received for this round and the next ones vouch too (each signature was checked
            // on receipt): the t + 1 first proposers of a request are rarely all in the vector, but their
            // queues reach every party. A queue equal to the vector's for its member adds nothing.
            let inVector = Dictionary(uniqueKeysWithValues: vector.map { ($0.member, $0.signature) })
            for (queueRound, byMember) in queues where queueRound >= round && !fresh.isEmpty {
                for (member, queue) in byMember where queueRound != round || inVector[member] != queue.signature {
                    for request in queue.requests {
                        let digest = ByteKey(AtomicBroadcast.digest(request))
                        guard var known = fresh[digest], !known.carriers.contains(member) else { continue }
                        known.carriers.append(member)
                        fresh[digest] = known
                    }
                }
            }
            let ordered = fresh.keys.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
            let entries = ordered.map { fresh[$0]! }
            complete(
                entries.map(\.request), digests: ordered.map(\.bytes),
                attested: entries.map { $0.carriers.count >= configuration.weakQuorum }, vector: value, &effects)
        }

        /// Delivers `requests` (with their `digests`) as this round's batch and moves to the next round.
        mutating func complete(
            _ requests: [[UInt8]], digests: [[UInt8]], attested: [Bool] = [], vector: [UInt8]? = nil,
            _ effects: inout Effects<Message, Output>
        ) {
            finishFast(round, vector: vector)
            keepDeliveredBatch(requests, round: round)
            catchUpAnswers = [:]
            rememberDelivered(digests, round: round)
            if !digests.isEmpty {
                let done = Set(digests.map(ByteKey.init))
                pending.removeAll { done.contains(ByteKey($0.digest)) }
                pendingDigests.subtract(done)
            }
            effects.output(Batch(round: round, requests: requests, attested: attested, digests: digests))
            round += 1
            for node in catchUpWaiting.keys.sorted() where catchUpWaiting[node] == round - 1 {
                catchUpWaiting[node] = nil
                answerCatchUp(round - 1, to: node, &effects)
            }
            collectGarbage()
        }

        /// Records `digests` as delivered in `round`, for deduplication until the round is forgotten.
        mutating func rememberDelivered(_ digests: [[UInt8]], round: UInt64) {
            guard !digests.isEmpty else { return }
            for digest in digests { delivered[ByteKey(digest)] = round }
            deliveredByRound[round, default: []].append(contentsOf: digests)
        }

        /// Drops state of old rounds. The agreements of the last `futureRoundWindow` + 1 rounds are kept so
        /// that slower parties can still finish them with our help: a party that many rounds behind drops none
        /// of our messages (we may be idle in round r + 1 having sent nothing past round r, which is inside
        /// the window of a party in round r − `futureRoundWindow`), so it gets no catch-up, and it needs our
        /// c-ready signatures on its own commit before it may release its coin share and vote. Parties
        /// further behind have dropped one of our messages and catch up instead.
        mutating func collectGarbage() {
            queues = queues.filter { $0.key >= round }
            verifiedQueues.forget(below: round)
            // Only the current round is ever looked up in this one.
            sentQueue = sentQueue.filter { $0 >= round }
            // Kept as long as the round's agreement: a fast-path round can fall back after this party delivered it.
            proposedRound = proposedRound.filter { $0 + limits.futureRoundWindow + 1 >= round }
            fast = fast.filter { $0.key + limits.futureRoundWindow + 1 >= round }
            agreements = agreements.filter { $0.key + limits.futureRoundWindow + 1 >= round }
            sentBinding = sentBinding.filter { $0.key + limits.futureRoundWindow + 1 >= round }
            resent = resent.filter { $0.key + limits.futureRoundWindow + 1 >= round }
            if round > limits.deliveredMemoryRounds {
                let oldest = round - limits.deliveredMemoryRounds
                for forgotten in deliveredByRound.keys.filter({ $0 < oldest }) {
                    let digests = deliveredByRound.removeValue(forKey: forgotten) ?? []
                    for digest in digests where delivered[ByteKey(digest)] == forgotten { delivered[ByteKey(digest)] = nil }
                }
            }
            forgetDeliveredBatches()
        }
    }
}
