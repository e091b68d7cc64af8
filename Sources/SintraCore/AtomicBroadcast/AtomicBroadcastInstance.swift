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
        private let keys: LocalKeys
        /// The generator the agreements' generators derive from, one per round (`ProtocolRandom.derive`), so
        /// that a replay rebuilds each round's agreement with the same one.
        private let random: ProtocolRandom
        /// Whether the instance records its `JournalEntry`s for `takeJournal()`.
        public let journaling: Bool
        /// Queue signatures verified here, shared with the agreements' predicates (kept for the rounds of
        /// `queues`).
        private let verifiedQueues: VerifiedQueueSignatures
        /// Entries recorded since the last `takeJournal()`.
        private var journal: [JournalEntry] = []
        /// The messages the replay of `Resumption.journal` produced, sent again by `start()`.
        private var replayed = Effects<Message, Output>()
        /// Journal entries replayed at `init(resuming:)`.
        public private(set) var replayedEntryCount = 0

        /// The round being decided.
        public private(set) var round: UInt64 = 1
        /// A submitted, undelivered request, and the first round whose queue was built while it was pending.
        private struct PendingRequest {
            let digest: [UInt8]
            let request: [UInt8]
            var firstQueueRound: UInt64?
        }

        /// Submitted, undelivered requests in submission order, and their digests.
        private var pending: [PendingRequest] = []
        private var pendingDigests: Set<ByteKey> = []
        /// Digests of delivered requests with the round that delivered them (pruned after
        /// `deliveredMemoryRounds`).
        private var delivered: [ByteKey: UInt64] = [:]
        /// The same digests by round, so that forgetting a round touches only its own digests (filtering
        /// all of `delivered` every round cost about a tenth of a replica's CPU under load).
        private var deliveredByRound: [UInt64: [[UInt8]]] = [:]
        private var sentQueue: Set<UInt64> = []
        private var proposedRound: Set<UInt64> = []
        /// Valid queues per round (current and up to `futureRoundWindow` ahead), first per member.
        private var queues: [UInt64: [Int: SignedQueue]] = [:]
        private var agreements: [UInt64: ValidatedAgreement.Instance] = [:]
        /// Messages dropped for being too far ahead; a party that drops one catches up by asking its peers.
        public private(set) var droppedMessageCount = 0
        /// Batches delivered in recent rounds (the last `deliveredMemoryRounds`), to answer laggards; after a
        /// restart, filled from the batches on disk (`Resumption.recentBatches`), so a restarted party
        /// answers for rounds it delivered before its restart too.
        private var deliveredBatches: [UInt64: [[UInt8]]] = [:]
        /// The round for which we last asked for catch-up, and the answers for the current round: each
        /// responder's vector (first answer counts), at most n entries.
        private var catchUpRequestedRound: UInt64 = 0
        private var catchUpAnswers: [Int: [[UInt8]]] = [:]
        /// Answers sent, per round and peer, at most `Limits.catchUpAnswersPerPeerMax` each per life of the
        /// peer (a peer that restarted asks for the same round again; `peerRestarted` starts its count anew).
        private var catchUpAnswered: [UInt64: [Int: Int]] = [:]
        /// Requests for rounds not decided here yet: the latest round each peer asked for (at most n
        /// entries), answered when this party delivers it. A laggard asks once per round, so an early
        /// request must not be forgotten.
        private var catchUpWaiting: [Int: UInt64] = [:]
        /// The highest round whose messages this party dropped, at most `deliveredMemoryRounds` ahead of
        /// it: the parties ahead will not resend them, so every round up to it is caught up (asked for when
        /// entered), whether the party got there by catch-up or by agreement. A Byzantine peer can raise it
        /// with one far-future message; that costs at most one request and n answers per round.
        private var catchUpHorizon: UInt64 = 0
        /// Rounds delivered through catch-up instead of agreement.
        public private(set) var caughtUpRoundCount = 0
        /// This party's binding messages (queues, agreement messages) with their recipients, by round, for the
        /// rounds whose agreements it keeps (from `round` − `futureRoundWindow` − 1 on, as `agreements`): sent
        /// again to a peer that asks for one of those rounds before this party delivered it
        /// (docs/DURABILITY.md, "Stage 2": a peer that crashed lost what was in flight to it).
        private var sentBinding: [UInt64: [Outgoing<Message>]] = [:]
        /// Resends per round and peer, at most `Limits.catchUpAnswersPerPeerMax` each; only rounds in
        /// `sentBinding` have entries, so at most (window + 2) × n.
        private var resent: [UInt64: [Int: Int]] = [:]
        /// Own messages sent again to peers that asked for a round not delivered here.
        public private(set) var resentMessageCount = 0
        /// Fast-path state per round (`FastPath.swift`), for the rounds whose agreements are kept and those
        /// up to `futureRoundWindow` ahead.
        private var fast: [UInt64: FastRound] = [:]
        /// Per member: rounds it led in a row that fell back here, and how many of its next rounds this
        /// party leaves at once instead of waiting for its timer (suspicion: local, it only saves time).
        private var leaderFallbacks: [Int: Int] = [:]
        private var leaderSkips: [Int: Int] = [:]
        /// Rounds this party delivered from its fast path.
        public private(set) var fastRoundCount = 0
        /// Rounds this party delivered from a fallback agreement (the fast path stopped, or was off).
        public private(set) var agreedRoundCount = 0
        /// Rounds up to this one are silent: this party may have sent messages in them before a restart and
        /// has forgotten what, so it sends no queue and takes no part in their agreements (it could
        /// contradict itself); it delivers them by catch-up only. 0 for a party that never restarted.
        public let silentThrough: UInt64

        /// Where a restarted party resumes (docs/DURABILITY.md): the first round it has not delivered, the
        /// batches it delivered in the rounds before (the last `deliveredMemoryRounds` of them are enough,
        /// for deduplication), and its persisted send horizon, the highest round it may have sent a binding
        /// message for (`AtomicBroadcast.bindingRound(of:)`). Rounds up to the horizon are silent
        /// (`silentThrough`); a horizon below `nextRound` leaves none.
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
            for batch in resumption.recentBatches where batch.round >= oldest && batch.round < round {
                rememberDelivered(batch.requests.map(AtomicBroadcast.digest), round: batch.round)
                deliveredBatches[batch.round] = batch.requests
            }
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
        private mutating func replay(_ entry: JournalEntry) {
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
        private func mayTakePart(in someRound: UInt64) -> Bool { someRound > silentThrough }

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

        private mutating func enqueue(_ request: [UInt8], digest: [UInt8], passedOver: Bool) -> SubmitResult {
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


        // MARK: Fast path (FastPath.swift)

        /// What this party knows and did in one round's fast path. Every collection holds at most one entry
        /// per member (first one counts), so a round costs O(n) here whatever peers send.
        private struct FastRound {
            /// The leader's first proposal, and its digest once checked valid (nil digest: not checked yet).
            var proposal: [UInt8]?
            var proposalDigest: [UInt8]?
            var proposed = false
            var votedDigest: [UInt8]?
            /// Votes received, first per member: digest and signature; `checkedVotes` those verified.
            var votes: [Int: (digest: ByteKey, signature: [UInt8])] = [:]
            var checkedVotes: Set<Int> = []
            /// This party's lock (it committed), with the vector.
            var lock: FastLock?
            var commits: [Int: ByteKey] = [:]
            var stopped = false
            /// Stopped on suspicion of the leader, or because the leader gave the round up (`abdicate`), not
            /// on evidence of a failure: not counted against the leader.
            var suspected = false
            var stops: [Int: FastStop] = [:]
            /// A valid lock seen (own or in a stop) and its vector: every lock of a round is on one digest.
            var knownLock: FastLock?
            var lockedVector: [UInt8]?
            var decidedFast = false
            var timeouts = 0
            /// A valid vector of the round kept after delivery, for a fallback this party joins late.
            var fallbackVector: [UInt8]?

            var messageCount: Int { (proposal == nil ? 0 : 1) + votes.count + commits.count + stops.count }
        }

        /// Handles a fast-path message of `fastRound` from `node`.
        private mutating func handleFast(
            _ message: FastMessage, round fastRound: UInt64, from node: Int, _ effects: inout Effects<Message, Output>
        ) {
            guard limits.optimistic, mayTakePart(in: fastRound) else { return }
            // Rounds whose agreements are kept (a late fallback) through the window ahead.
            guard fastRound >= round || agreements[fastRound] != nil || fast[fastRound] != nil else { return }
            guard fastRound <= round + limits.futureRoundWindow else {
                droppedMessageCount += 1
                raiseCatchUpHorizon(to: fastRound)
                return
            }
            var state = fast[fastRound] ?? FastRound()
            defer { fast[fastRound] = state }
            switch message {
            case .propose(let vector):
                guard fastRound >= round else { return }
                guard node == AtomicBroadcast.leader(of: fastRound, configuration: configuration) else {
                    effects.fault(node, path, .notAllowed, "a-fast propose from a member that does not lead round \(fastRound)")
                    return
                }
                if let earlier = state.proposal {
                    if earlier != vector {
                        effects.fault(node, path, .equivocation, "two fast-path proposals for round \(fastRound)")
                        if fastRound == round { stopFast(fastRound, &state, &effects) }
                    }
                    return
                }
                state.proposal = vector
            case .vote(let digest, let signature):
                guard fastRound >= round else { return }
                if let earlier = state.votes[node] {
                    if earlier.digest.bytes != digest {
                        effects.fault(node, path, .equivocation, "two fast-path votes for round \(fastRound)")
                    }
                    return
                }
                state.votes[node] = (ByteKey(digest), signature)
            case .commit(let digest):
                guard fastRound >= round, state.commits[node] == nil else { return }
                state.commits[node] = ByteKey(digest)
            case .stop(let stop, let lock, let vector):
                guard stop.member == node else {
                    effects.fault(node, path, .notAllowed, "a-fast stop signed by \(stop.member) sent by \(node)")
                    return
                }
                guard state.stops[node] == nil else { return }
                guard isValidStop(stop, lock: lock, vector: vector, round: fastRound) else {
                    effects.fault(node, path, .invalidProof, "a-fast stop with a bad signature or lock")
                    return
                }
                state.stops[node] = stop
                // The leader gave its round up: nobody waits for its timer.
                if node == AtomicBroadcast.leader(of: fastRound, configuration: configuration), !state.stopped,
                    fastRound >= round
                {
                    state.suspected = true
                    stopFast(fastRound, &state, &effects)
                }
                if let lock, let vector, state.knownLock == nil {
                    state.knownLock = lock
                    state.lockedVector = vector
                }
                // A party that delivered the round answers a stop with its batch (§7's catch-up answer): a
                // party that stopped after t + 1 honest parties decided on the fast path learns the batch so.
                if fastRound < round, node != me { answerCatchUp(fastRound, to: node, &effects) }
                joinFallback(fastRound, &state, &effects)
            }
        }

        /// A stop's signature, and its lock: n − t valid votes for the digest it claims, and a valid vector
        /// with that digest.
        private func isValidStop(_ stop: FastStop, lock: FastLock?, vector: [UInt8]?, round stopRound: UInt64) -> Bool {
            var signatures = SignatureBatch()
            let statement = AtomicBroadcast.fastStopStatement(path: path, round: stopRound, lockedDigest: stop.lockedDigest)
            signatures.add(stop.signature, message: statement.signingBytes, key: configuration.memberKeys[stop.member - 1])
            if let lockedDigest = stop.lockedDigest {
                guard let lock, let vector, lock.digest == lockedDigest,
                    AtomicBroadcast.isWellFormed(lock, round: stopRound, path: path, configuration: configuration, into: &signatures),
                    Array(SHA256.hash(data: vector)) == lockedDigest,
                    AtomicBroadcast.validVector(
                        vector, round: stopRound, path: path, configuration: configuration, limits: limits,
                        verified: verifiedQueues) != nil
                else { return false }
            } else {
                guard lock == nil, vector == nil else { return false }
            }
            return signatures.verify()
        }

        /// Leaves the fast path of `fastRound`: never votes or commits in it again, and tells everyone, with
        /// its lock if it committed.
        private mutating func stopFast(_ fastRound: UInt64, _ state: inout FastRound, _ effects: inout Effects<Message, Output>) {
            guard !state.stopped, mayTakePart(in: fastRound) else { return }
            state.stopped = true
            if journaling { journal.append(.fastStop(round: fastRound)) }
            let message = stopMessage(fastRound, state)
            keep([Outgoing(message, to: .all)])
            effects.broadcast(message)
        }

        private func stopMessage(_ fastRound: UInt64, _ state: FastRound) -> Message {
            let statement = AtomicBroadcast.fastStopStatement(path: path, round: fastRound, lockedDigest: state.lock?.digest)
            let stop = FastStop(member: me, lockedDigest: state.lock?.digest, signature: keys.identity.sign(statement))
            return .fast(round: fastRound, .stop(stop, lock: state.lock, vector: state.lock == nil ? nil : state.lockedVector))
        }

        /// Stops once t + 1 members stopped (one of them honest), and on n − t stops proposes the fallback to
        /// the round's agreement (`AtomicBroadcast.validFallback`).
        private mutating func joinFallback(_ fastRound: UInt64, _ state: inout FastRound, _ effects: inout Effects<Message, Output>) {
            if !state.stopped, state.stops.count >= configuration.weakQuorum { stopFast(fastRound, &state, &effects) }
            guard state.stopped, state.stops.count >= configuration.quorum, !proposedRound.contains(fastRound),
                mayTakePart(in: fastRound)
            else { return }
            let vector: [UInt8]
            if let locked = state.lockedVector, state.knownLock != nil {
                vector = locked
            } else if let kept = state.fallbackVector {
                vector = kept
            } else if fastRound == round, let collected = collectedVector(of: round) {
                vector = collected
            } else {
                return
            }
            let stops = state.stops.keys.sorted().map { state.stops[$0]! }
            let lock = stops.contains { $0.lockedDigest != nil } ? state.knownLock : nil
            let value = FallbackProposal(stops: stops, lock: lock, vector: vector).encoded
            proposedRound.insert(fastRound)
            if journaling { journal.append(.proposal(round: fastRound, value: value)) }
            var agreement = agreements[fastRound] ?? makeAgreement(fastRound)
            let child = agreement.propose(value)
            agreements[fastRound] = agreement
            let lifted = child.lifted(message: { Message.agreement(round: fastRound, $0) }, output: { _ -> Output? in nil })
            keep(lifted.messages)
            effects.append(lifted)
        }

        /// The timer of `timerRound` fired: leave the fast path if the round is still undecided; on the second
        /// firing also ask the peers for the round (catch-up), in case the parties that decided it are past
        /// answering stops. Re-armed once.
        private mutating func handleTimeout(_ timerRound: UInt64, _ effects: inout Effects<Message, Output>) {
            guard limits.optimistic, timerRound == round, mayTakePart(in: round) else { return }
            var state = fast[round] ?? FastRound()
            state.timeouts += 1
            if state.timeouts == 1 {
                stopFast(round, &state, &effects)
                joinFallback(round, &state, &effects)
                effects.send(.timeout(round: round), to: .node(me))
            } else if state.timeouts == 2 {
                requestCatchUp(&effects)
            }
            fast[round] = state
        }

        /// Runs the current round's fast path as far as it goes: the leader's proposal, this party's vote, its
        /// commit, and the decision. Returns the vector decided, if any.
        private mutating func advanceFast(_ effects: inout Effects<Message, Output>) -> [UInt8]? {
            guard limits.optimistic, mayTakePart(in: round), sentQueue.contains(round) else { return nil }
            var state = fast[round] ?? FastRound()
            defer { fast[round] = state }
            let leader = AtomicBroadcast.leader(of: round, configuration: configuration)
            if !state.proposed, me == leader, !state.stopped, let vector = collectedVector(of: round) {
                state.proposed = true
                if journaling { journal.append(.fastProposal(round: round, vector: vector)) }
                let message = Message.fast(round: round, .propose(vector: vector))
                keep([Outgoing(message, to: .all)])
                effects.broadcast(message)
            }
            if state.proposalDigest == nil, let proposal = state.proposal {
                if AtomicBroadcast.validVector(
                    proposal, round: round, path: path, configuration: configuration, limits: limits,
                    verified: verifiedQueues) != nil
                {
                    state.proposalDigest = Array(SHA256.hash(data: proposal))
                } else {
                    state.proposal = nil
                    effects.fault(leader, path, .invalidProof, "a-fast proposal that fails the round predicate")
                    stopFast(round, &state, &effects)
                }
            }
            if state.votedDigest == nil, !state.stopped, let digest = state.proposalDigest {
                state.votedDigest = digest
                if journaling { journal.append(.fastVote(round: round, digest: digest)) }
                let message = voteMessage(round, digest: digest)
                keep([Outgoing(message, to: .all)])
                effects.broadcast(message)
            }
            if state.lock == nil, !state.stopped, let digest = state.proposalDigest, let proposal = state.proposal,
                let lock = certifiedLock(digest, &state, &effects)
            {
                state.lock = lock
                if state.knownLock == nil {
                    state.knownLock = lock
                    state.lockedVector = proposal
                }
                if journaling { journal.append(.fastLock(round: round, lock: lock, vector: proposal)) }
                let message = Message.fast(round: round, .commit(digest: digest))
                keep([Outgoing(message, to: .all)])
                effects.broadcast(message)
            }
            // The decision: n − t commits on a digest whose vector this party holds.
            var tally: [ByteKey: Int] = [:]
            for digest in state.commits.values { tally[digest, default: 0] += 1 }
            guard let (decided, _) = tally.first(where: { $0.value >= configuration.quorum }) else { return nil }
            if let proposal = state.proposal, state.proposalDigest == decided.bytes { return decide(proposal, &state) }
            if let locked = state.lockedVector, state.knownLock?.digest == decided.bytes { return decide(locked, &state) }
            return nil
        }

        /// The valid queues this party holds for `someRound`, by member, as an encoded vector, once there are
        /// n − t of them: what it proposes as leader, or to a fallback without a lock.
        private func collectedVector(of someRound: UInt64) -> [UInt8]? {
            guard let collected = queues[someRound], collected.count >= configuration.quorum else { return nil }
            return AtomicBroadcast.encodeVector(collected.keys.sorted().map { collected[$0]! })
        }

        private mutating func decide(_ vector: [UInt8], _ state: inout FastRound) -> [UInt8] {
            state.decidedFast = true
            return vector
        }

        private func voteMessage(_ voteRound: UInt64, digest: [UInt8]) -> Message {
            let statement = AtomicBroadcast.fastVoteStatement(path: path, round: voteRound, digest: digest)
            return .fast(round: voteRound, .vote(digest: digest, signature: keys.identity.sign(statement)))
        }

        /// n − t valid votes for `digest`, checked as one batch once there are enough (bad ones are faults and
        /// dropped), as a lock; nil while fewer.
        private func certifiedLock(_ digest: [UInt8], _ state: inout FastRound, _ effects: inout Effects<Message, Output>)
            -> FastLock?
        {
            let key = ByteKey(digest)
            let voters = state.votes.filter { $0.value.digest == key }.keys.sorted()
            guard voters.count >= configuration.quorum else { return nil }
            let unchecked = voters.filter { !state.checkedVotes.contains($0) }
            if !unchecked.isEmpty {
                var batch = SignatureBatch()
                let message = AtomicBroadcast.fastVoteStatement(path: path, round: round, digest: digest).signingBytes
                for voter in unchecked {
                    batch.add(state.votes[voter]!.signature, message: message, key: configuration.memberKeys[voter - 1])
                }
                let invalid = batch.verify() ? [] : batch.invalidIndices()
                for (index, voter) in unchecked.enumerated() {
                    if invalid.contains(index) {
                        state.votes[voter] = nil
                        effects.fault(voter, path, .invalidProof, "a-fast vote with a bad signature")
                    } else {
                        state.checkedVotes.insert(voter)
                    }
                }
            }
            let valid = voters.filter { state.checkedVotes.contains($0) && state.votes[$0] != nil }
            guard valid.count >= configuration.quorum else { return nil }
            return FastLock(
                digest: digest,
                votes: valid.prefix(configuration.quorum).map { FastVote(member: $0, signature: state.votes[$0]!.signature) })
        }

        /// Gives up leading the rounds up to `lastRound` (from the current one, at most `futureRoundWindow`
        /// ahead) that this party leads: it stops their fast paths now, and the other parties stop theirs as
        /// soon as its stop arrives, instead of waiting for their timers. For a replica about to be busy for
        /// a while (writing a snapshot): its rounds go to agreement without it at once. Always safe (a stop
        /// is); the rounds cost an agreement each.
        public mutating func abdicate(through lastRound: UInt64) -> Effects<Message, Output> {
            var effects = Effects<Message, Output>()
            guard limits.optimistic else { return effects }
            let last = min(lastRound, round + limits.futureRoundWindow)
            guard last >= round else { return effects }
            for someRound in round...last
            where AtomicBroadcast.leader(of: someRound, configuration: configuration) == me && mayTakePart(in: someRound) {
                var state = fast[someRound] ?? FastRound()
                if !state.stopped {
                    state.suspected = true
                    stopFast(someRound, &state, &effects)
                }
                fast[someRound] = state
            }
            advance(&effects)
            return effects
        }

        /// At the start of a round this party takes part in: arms its timer, and leaves the fast path at once
        /// if it suspects the leader.
        private mutating func startFast(_ effects: inout Effects<Message, Output>) {
            guard limits.optimistic else { return }
            effects.send(.timeout(round: round), to: .node(me))
            let leader = AtomicBroadcast.leader(of: round, configuration: configuration)
            guard let skips = leaderSkips[leader], skips > 0 else { return }
            leaderSkips[leader] = skips - 1
            var state = fast[round] ?? FastRound()
            state.suspected = true
            stopFast(round, &state, &effects)
            fast[round] = state
        }

        /// After delivering `deliveredRound`: counts a fallback against its leader (doubling the rounds of
        /// its this party skips, up to 64), or clears the count after a fast decision; keeps a valid vector
        /// for a fallback this party may still have to join.
        private mutating func finishFast(_ deliveredRound: UInt64, vector: [UInt8]?) {
            guard limits.optimistic, var state = fast[deliveredRound] else { return }
            let leader = AtomicBroadcast.leader(of: deliveredRound, configuration: configuration)
            if state.decidedFast {
                leaderFallbacks[leader] = 0
            } else if state.stopped, !state.suspected {
                let count = (leaderFallbacks[leader] ?? 0) + 1
                leaderFallbacks[leader] = count
                leaderSkips[leader] = min(1 << min(count - 1, 6), 64)
            }
            if state.fallbackVector == nil {
                if let vector {
                    state.fallbackVector = vector
                } else if state.proposalDigest != nil {
                    state.fallbackVector = state.proposal
                } else if let collected = collectedVector(of: deliveredRound) {
                    state.fallbackVector = collected
                }
            }
            fast[deliveredRound] = state
        }

        // MARK: Catch-up

        /// Asks every peer for the current round's decided vector, once per round. Used for the rounds up to
        /// the catch-up horizon, whose messages had to be dropped: the parties ahead no longer need this
        /// party, so it must not wait for messages they will not send again.
        private mutating func requestCatchUp(_ effects: inout Effects<Message, Output>) {
            guard catchUpRequestedRound != round else { return }
            catchUpRequestedRound = round
            effects.broadcast(.catchUpRequest(round: round))
        }

        /// `node` restarted (its shell saw a new incarnation of it, e.g. a new link `hello`): it lost every
        /// answer and resend in flight to it, so the answers and resends it may get start counting anew.
        /// Without this, a party killed again and again before it could take in the answers to its request
        /// (each life asks once) uses up `catchUpAnswersPerPeerMax` for its round at every peer, and its next
        /// life waits in that round for ever. A Byzantine peer gets a new budget only per restart its
        /// shell reports: for the network, one authenticated connection with a new incarnation each.
        public mutating func peerRestarted(_ node: Int) {
            guard node != me else { return }
            for key in catchUpAnswered.keys { catchUpAnswered[key]?[node] = nil }
            for key in resent.keys { resent[key]?[node] = nil }
        }

        private mutating func raiseCatchUpHorizon(to droppedRound: UInt64) {
            let (ceiling, overflow) = round.addingReportingOverflow(limits.deliveredMemoryRounds)
            catchUpHorizon = max(catchUpHorizon, overflow ? droppedRound : min(droppedRound, ceiling))
        }

        private mutating func answerCatchUp(_ requestedRound: UInt64, to node: Int, _ effects: inout Effects<Message, Output>) {
            if requestedRound >= round, node != me {
                catchUpWaiting[node] = requestedRound
                resendOwnMessages(of: requestedRound, to: node, &effects)
                return
            }
            guard node != me, let batch = deliveredBatches[requestedRound],
                catchUpAnswered[requestedRound, default: [:]][node, default: 0] < limits.catchUpAnswersPerPeerMax
            else { return }
            catchUpAnswered[requestedRound, default: [:]][node, default: 0] += 1
            effects.send(.catchUpResponse(round: requestedRound, highestRound: round - 1, batch: batch), to: .node(node))
        }

        /// Remembers this party's binding messages among `messages` for `resendOwnMessages`.
        private mutating func keep(_ messages: [Outgoing<Message>]) {
            for outgoing in messages {
                guard let bindingRound = AtomicBroadcast.bindingRound(of: outgoing.message) else { continue }
                sentBinding[bindingRound, default: []].append(outgoing)
            }
        }

        /// Sends `node` again this party's binding messages of `requestedRound` that went to it (to all, or
        /// to it alone), a round this party has not delivered yet. Why: a peer that crashed lost the
        /// messages in flight to it, and a party that did not crash sends nothing of a round twice; with
        /// more than t parties restarted in the same round, each may then wait for ever for what only the
        /// others had sent (docs/DURABILITY.md, "Stage 2", restarts beyond t). A restarted party asks for
        /// each round up to `futureRoundWindow` past its first one when it enters it (`catchUpHorizon`), so
        /// this covers every round whose messages it can have lost. The peer drops what it already has: a
        /// byte-equal queue or agreement message is no new input. At most `catchUpAnswersPerPeerMax` times
        /// per round and peer, so a Byzantine peer's requests cost a bounded number of messages.
        private mutating func resendOwnMessages(
            of requestedRound: UInt64, to node: Int, _ effects: inout Effects<Message, Output>
        ) {
            guard let messages = sentBinding[requestedRound],
                resent[requestedRound, default: [:]][node, default: 0] < limits.catchUpAnswersPerPeerMax
            else { return }
            resent[requestedRound, default: [:]][node, default: 0] += 1
            for outgoing in messages where outgoing.recipient == .all || outgoing.recipient == .node(node) {
                resentMessageCount += 1
                effects.send(outgoing.message, to: .node(node))
            }
        }

        /// Delivers round r from catch-up answers once t + 1 parties sent the same batch: one of them is
        /// honest, and every honest party delivered that batch in round r (validated agreement decided the
        /// same vector at all of them, and they deduplicate alike). A batch no honest party can have
        /// delivered (not in digest order, over the caps, or repeating a request delivered here) is a fault.
        private mutating func receiveCatchUp(
            _ answeredRound: UInt64, highestRound: UInt64, batch: [[UInt8]], from node: Int,
            _ effects: inout Effects<Message, Output>
        ) {
            guard node != me, answeredRound == round, catchUpAnswers[node] == nil, agreements[round]?.output == nil
            else { return }
            let digests = batch.map(AtomicBroadcast.digest)
            let inOrder = zip(digests, digests.dropFirst()).allSatisfy { $0.0.lexicographicallyPrecedes($0.1) }
            guard inOrder, batch.count <= configuration.replicas * limits.batchCountMax,
                batch.allSatisfy({ $0.count <= limits.requestBytesMax }), digests.allSatisfy({ delivered[ByteKey($0)] == nil })
            else {
                effects.fault(node, path, .invalidProof, "catch-up batch for round \(answeredRound) is not possible")
                return
            }
            catchUpAnswers[node] = batch
            let matching = catchUpAnswers.values.filter { $0 == batch }.count
            guard matching >= configuration.weakQuorum else { return }
            caughtUpRoundCount += 1
            complete(batch, digests: digests, &effects)
            // Still behind: ask for the next round right away.
            if highestRound >= round { requestCatchUp(&effects) }
        }

        private mutating func makeAgreement(_ agreementRound: UInt64) -> ValidatedAgreement.Instance {
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

        private mutating func advance(_ effects: inout Effects<Message, Output>) {
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
        private mutating func signedQueue() -> SignedQueue {
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
        private mutating func deliver(_ value: [UInt8], _ effects: inout Effects<Message, Output>) {
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
        private mutating func complete(
            _ requests: [[UInt8]], digests: [[UInt8]], attested: [Bool] = [], vector: [UInt8]? = nil,
            _ effects: inout Effects<Message, Output>
        ) {
            finishFast(round, vector: vector)
            deliveredBatches[round] = requests
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
        private mutating func rememberDelivered(_ digests: [[UInt8]], round: UInt64) {
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
        private mutating func collectGarbage() {
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
                deliveredBatches[oldest - 1] = nil
                catchUpAnswered = catchUpAnswered.filter { $0.key >= oldest }
            }
        }
    }
}
