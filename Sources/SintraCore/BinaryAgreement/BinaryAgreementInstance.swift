import SintraCrypto

extension BinaryAgreement {
    /// One agreement instance at one party (see `BinaryAgreement` for the protocol and its thresholds).
    ///
    /// A deterministic state machine: `propose` and `handle` are the only inputs, and everything they cause
    /// comes back as `Effects`. Messages to `.all` include this party; the shell loops them back, and this
    /// party's votes are counted when they arrive like everyone else's. Ordering rule for the shell: persist
    /// the instance (its votes) before sending the messages of an `Effects` (DESIGN.md, Replication).
    public struct Instance: ProtocolInstance {
        public typealias Output = Bool

        /// Where this party is in the current round.
        private enum Phase: Sendable {
            /// No input yet: votes of others are counted, none is sent.
            case awaitingInput
            /// Pre-process sent; waiting for 2t + 1 pre-processes.
            case preProcessing
            /// Round r > 1 and every one of the first n − t round-(r − 1) main-votes abstained: the soft pre-vote
            /// is coin(r − 1), which is not known yet.
            case awaitingCoin(softCertificate: QuorumCertificate)
            /// Round-r pre-vote sent; waiting for n − t round-r pre-votes.
            case preVoted
            /// Round-r main-vote sent; waiting for n − t round-r main-votes.
            case mainVoted
            /// Decided and sent `decided`; nothing more is needed or sent.
            case finished
        }

        public let path: InstancePath
        public let configuration: GroupConfiguration
        private let keys: LocalKeys
        private var random: ProtocolRandom

        private var phase = Phase.awaitingInput
        private var input: Bool?
        /// The current round, from 1.
        public private(set) var round = 1
        /// The decided value, once decided.
        public private(set) var decision: Bool?
        /// The round in which the decided value was decided (by this party, or by the party whose `decided`
        /// certificate this party accepted).
        public private(set) var decisionRound: Int?

        private var preProcesses = VoteTable<PreProcessRecord>()
        /// Round `round`.
        private var current = RoundState(number: 1)
        /// Round `round − 1` (its coin only), from round 2 on.
        private var previous: RoundState?
        private var buffer: MessageBuffer
        /// Signatures already verified (see `SignatureCache`).
        var verifiedSignatures = SignatureCache()

        /// A new instance. `keys` are this party's; `random` draws the nonces of its coin-share proofs.
        public init(configuration: GroupConfiguration, keys: LocalKeys, path: InstancePath, random: ProtocolRandom) {
            self.init(
                configuration: configuration, keys: keys, path: path, random: random,
                bufferCapacity: BinaryAgreement.bufferedMessageCountMax)
        }

        /// As the public initializer, with another buffer cap (tests use a small one).
        init(
            configuration: GroupConfiguration, keys: LocalKeys, path: InstancePath, random: ProtocolRandom,
            bufferCapacity: Int
        ) {
            precondition(configuration.isMember(keys.index), "this party is not a member of the group")
            precondition(
                configuration.memberKeys[keys.index - 1] == keys.identity.publicKey,
                "this party's identity does not match its member key")
            self.configuration = configuration
            self.keys = keys
            self.path = path
            self.random = random
            self.buffer = MessageBuffer(capacity: bufferCapacity)
        }

        /// True once decided and `decided` was sent: this instance needs nothing more and sends nothing more.
        public var isFinished: Bool {
            if case .finished = phase { return true }
            return false
        }

        /// Round-bound messages held for later (future rounds, or votes waiting for a coin); at most
        /// `BinaryAgreement.bufferedMessageCountMax`.
        public var bufferedMessageCount: Int { buffer.count }

        /// coin(round) and coin(round − 1), if known (for the checks in BinaryAgreementValidation.swift).
        var currentCoin: Bool? { current.coin }
        var previousCoin: Bool? { previous?.coin }

        /// Votes counted so far (for tests): pre-processes, and this round's pre-votes and main-votes.
        var countedPreProcesses: Int { preProcesses.count }
        var countedPreVotes: Int { current.preVotes.count }
        var countedMainVotes: Int { current.mainVotes.count }

        /// 2t + 1 pre-processes: odd, so a strict majority exists, and that majority has t + 1 = `weakQuorum`
        /// members (equal to `quorum` when n = 3t + 1).
        private var preProcessCount: Int { 2 * configuration.weakQuorum - 1 }

        /// Starts the protocol with this party's input. Call once. After a `decided` has already finished the
        /// instance, this only records the input.
        public mutating func propose(_ value: Bool) -> Effects<Message, Bool> {
            precondition(input == nil, "propose is called once per instance")
            input = value
            var effects = Effects<Message, Bool>()
            guard case .awaitingInput = phase else { return effects }
            let statement = BinaryAgreement.preProcessStatement(path: path, value: value)
            effects.broadcast(.preProcess(value: value, signature: sign(statement)))
            phase = .preProcessing
            progress(&effects)
            return effects
        }

        /// Handles a message from member `sender` (authenticated by the link). Peer misbehaviour becomes a
        /// `Fault` in the effects; nothing a peer sends makes this trap.
        public mutating func handle(_ message: Message, from sender: Int) -> Effects<Message, Bool> {
            var effects = Effects<Message, Bool>()
            guard configuration.isMember(sender), !isFinished else { return effects }
            receive(message, from: sender, &effects)
            progress(&effects)
            return effects
        }

        // MARK: - Receiving

        private mutating func receive(_ message: Message, from sender: Int, _ effects: inout Effects<Message, Bool>) {
            switch message {
            case .preProcess(let value, let signature):
                receivePreProcess(value, signature: signature, message: message, from: sender, &effects)
            case .decided(let decidedRound, let value, let certificate):
                receiveDecided(decidedRound, value, certificate, from: sender, &effects)
            case .preVote(let messageRound, _, _, _), .mainVote(let messageRound, _, _),
                .coinShare(let messageRound, _):
                guard messageRound >= 1, let slot = MessageBuffer.slot(for: message, from: sender) else {
                    effects.fault(sender, path, .malformed, "round \(messageRound)")
                    return
                }
                if messageRound > round {
                    guard messageRound - round <= BinaryAgreement.futureRoundWindow else {
                        effects.fault(
                            sender, path, .outOfWindow,
                            "round \(messageRound) is more than \(BinaryAgreement.futureRoundWindow) ahead of \(round)")
                        return
                    }
                    park(message, in: slot, awaitingCoin: false, &effects)
                    return
                }
                // A message parked in its slot (waiting for a coin) is this sender's first for it.
                if let parked = buffer.message(in: slot) {
                    if parked != message { effects.fault(sender, path, .equivocation, "second, different \(slot)") }
                    return
                }
                receiveRoundMessage(message, in: slot, &effects)
            }
        }

        /// A message of the current round or an earlier one (`slot.round ≤ round`).
        private mutating func receiveRoundMessage(
            _ message: Message, in slot: MessageBuffer.Slot, _ effects: inout Effects<Message, Bool>
        ) {
            switch message {
            case .preVote(let messageRound, let value, let justification, let signature):
                // Votes of past rounds are no longer needed.
                guard messageRound == round else { return }
                receivePreVote(value, justification, signature, message: message, in: slot, &effects)
            case .mainVote(let messageRound, let vote, let signature):
                guard messageRound == round else { return }
                receiveMainVote(vote, signature, message: message, in: slot, &effects)
            case .coinShare(let messageRound, let share):
                // The previous round's coin is still needed to check soft pre-votes of this round.
                guard messageRound >= round - 1 else { return }
                receiveCoinShare(messageRound, share, from: slot.sender, &effects)
            case .preProcess, .decided:
                preconditionFailure("only round-bound messages have a slot")
            }
        }

        private mutating func receivePreProcess(
            _ value: Bool, signature: [UInt8], message: Message, from sender: Int,
            _ effects: inout Effects<Message, Bool>
        ) {
            if let first = preProcesses[sender] {
                if first.message != message {
                    effects.fault(sender, path, .equivocation, "second, different pre-process")
                }
                return
            }
            // Pre-processes matter only until this party's round-1 pre-vote.
            switch phase {
            case .awaitingInput, .preProcessing: break
            case .awaitingCoin, .preVoted, .mainVoted, .finished: return
            }
            let statement = BinaryAgreement.preProcessStatement(path: path, value: value)
            guard isValidSignature(signature, by: sender, on: statement) else {
                effects.fault(sender, path, .invalidProof, "pre-process signature does not verify")
                return
            }
            preProcesses.insert(PreProcessRecord(value: value, signature: signature, message: message), from: sender)
        }

        private mutating func receivePreVote(
            _ value: Bool, _ justification: PreVoteJustification, _ signature: [UInt8], message: Message,
            in slot: MessageBuffer.Slot, _ effects: inout Effects<Message, Bool>
        ) {
            let sender = slot.sender
            if let first = current.preVotes[sender] {
                if first.message != message {
                    effects.fault(sender, path, .equivocation, "second, different pre-vote in round \(round)")
                }
                return
            }
            // Round-r pre-votes matter only until this party's round-r main-vote.
            if case .mainVoted = phase { return }
            if awaitsCoin(justification) {
                park(message, in: slot, awaitingCoin: true, &effects)
                return
            }
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: value)
            guard isValidSignature(signature, by: sender, on: statement) else {
                effects.fault(sender, path, .invalidProof, "pre-vote signature does not verify (round \(round))")
                return
            }
            if case .invalid(let kind, let detail) = check(justification, round: round, value: value) {
                effects.fault(sender, path, kind, "pre-vote for \(value) in round \(round): \(detail)")
                return
            }
            current.preVotes.insert(
                PreVoteRecord(value: value, justification: justification, signature: signature, message: message),
                from: sender)
        }

        private mutating func receiveMainVote(
            _ vote: MainVote, _ signature: [UInt8], message: Message, in slot: MessageBuffer.Slot,
            _ effects: inout Effects<Message, Bool>
        ) {
            let sender = slot.sender
            if let first = current.mainVotes[sender] {
                if first.message != message {
                    effects.fault(sender, path, .equivocation, "second, different main-vote in round \(round)")
                }
                return
            }
            if case .abstain(let forFalse, let forTrue) = vote, awaitsCoin(forFalse) || awaitsCoin(forTrue) {
                park(message, in: slot, awaitingCoin: true, &effects)
                return
            }
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: round, value: vote.value)
            guard isValidSignature(signature, by: sender, on: statement) else {
                effects.fault(sender, path, .invalidProof, "main-vote signature does not verify (round \(round))")
                return
            }
            if case .invalid(let kind, let detail) = check(vote, round: round) {
                effects.fault(sender, path, kind, "main-vote in round \(round): \(detail)")
                return
            }
            current.mainVotes.insert(MainVoteRecord(vote: vote, signature: signature, message: message), from: sender)
        }

        private mutating func receiveCoinShare(
            _ shareRound: Int, _ share: ThresholdCoin.Share, from sender: Int, _ effects: inout Effects<Message, Bool>
        ) {
            guard share.index == sender else {
                effects.fault(sender, path, .notAllowed, "coin share of party \(share.index) sent by \(sender)")
                return
            }
            let name = BinaryAgreement.coinName(path: path, round: shareRound)
            let outcome: CoinShareOutcome
            if shareRound == round {
                outcome = current.receiveCoinShare(share, from: sender, key: configuration.coinKey, name: name)
            } else if previous != nil {
                outcome = previous!.receiveCoinShare(share, from: sender, key: configuration.coinKey, name: name)
            } else {
                return
            }
            switch outcome {
            case .counted, .ignored: break
            case .equivocation:
                effects.fault(sender, path, .equivocation, "second, different coin share for round \(shareRound)")
            case .invalid(let detail):
                effects.fault(sender, path, .invalidProof, detail)
            }
        }

        private mutating func receiveDecided(
            _ decidedRound: Int, _ value: Bool, _ certificate: QuorumCertificate, from sender: Int,
            _ effects: inout Effects<Message, Bool>
        ) {
            guard decidedRound >= 1 else {
                effects.fault(sender, path, .malformed, "decided in round \(decidedRound)")
                return
            }
            // n − t main-votes for `value` in one round: every honest party completing that round decides it in
            // the next one (see `BinaryAgreement`), so deciding at once is safe.
            // `verifiedSignatures` is only read here: a decided message may name any round, and signatures for
            // statements of arbitrary rounds must not fill the cache; but a decided certificate of this round or
            // the last is made of main-votes this party has usually verified already.
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: decidedRound, value: value)
            do {
                try certificate.verify(
                    statement, members: configuration.memberKeys, threshold: configuration.quorum,
                    alreadyVerified: { [verifiedSignatures] in
                        verifiedSignatures.contains($0.bytes, by: $0.member, on: statement)
                    })
            } catch {
                effects.fault(sender, path, .invalidProof, "decided certificate for round \(decidedRound): \(error)")
                return
            }
            decide(value, in: decidedRound, certificate: certificate, &effects)
        }

        private mutating func park(
            _ message: Message, in slot: MessageBuffer.Slot, awaitingCoin: Bool, _ effects: inout Effects<Message, Bool>
        ) {
            switch buffer.hold(message, in: slot, awaitingCoin: awaitingCoin) {
            case .held, .duplicate:
                break
            case .conflicting:
                effects.fault(slot.sender, path, .equivocation, "second, different \(slot)")
            case .heldEvicting(let evicted):
                effects.fault(evicted.sender, path, .outOfWindow, "buffer full: dropped \(evicted)")
            case .full:
                effects.fault(slot.sender, path, .outOfWindow, "buffer full: dropped \(slot)")
            }
        }

        // MARK: - Progress

        /// Takes every step that the votes held allow, and handles parked messages whose time has come, until
        /// neither changes anything.
        private mutating func progress(_ effects: inout Effects<Message, Bool>) {
            while !isFinished {
                let stepped = step(&effects)
                let drained = !isFinished && drainBuffer(&effects)
                if !stepped && !drained { return }
            }
        }

        private mutating func drainBuffer(_ effects: inout Effects<Message, Bool>) -> Bool {
            let ready = buffer.takeReady(round: round, previousCoinKnown: previous?.coin != nil)
            for (slot, message) in ready where !isFinished {
                receive(message, from: slot.sender, &effects)
            }
            return !ready.isEmpty
        }

        /// One protocol step, if its wait is over; returns whether it took one.
        private mutating func step(_ effects: inout Effects<Message, Bool>) -> Bool {
            switch phase {
            case .awaitingInput, .finished:
                return false
            case .preProcessing:
                guard preProcesses.count >= preProcessCount else { return false }
                preVoteInFirstRound(&effects)
            case .awaitingCoin(let softCertificate):
                guard let coin = previous?.coin else { return false }
                sendPreVote(coin, .soft(softCertificate), &effects)
            case .preVoted:
                guard current.preVotes.count >= configuration.quorum else { return false }
                sendMainVote(&effects)
            case .mainVoted:
                guard current.mainVotes.count >= configuration.quorum else { return false }
                completeRound(&effects)
            }
            return true
        }

        /// Step 1, round 1: pre-vote the majority b of the first 2t + 1 pre-processes, justified by t + 1 of
        /// them for b (a majority of 2t + 1 has at least t + 1).
        private mutating func preVoteInFirstRound(_ effects: inout Effects<Message, Bool>) {
            let counted = preProcesses.first(preProcessCount)
            let value = counted.filter { $0.record.value }.count >= configuration.weakQuorum
            let supporting = counted.filter { $0.record.value == value }.prefix(configuration.weakQuorum)
            precondition(supporting.count == configuration.weakQuorum, "a majority of 2t + 1 has t + 1 members")
            let certificate = QuorumCertificate(
                signatures: supporting.map { .init(member: $0.sender, bytes: $0.record.signature) })
            sendPreVote(value, .preProcessed(certificate), &effects)
        }

        private mutating func sendPreVote(
            _ value: Bool, _ justification: PreVoteJustification, _ effects: inout Effects<Message, Bool>
        ) {
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: value)
            let signature = sign(statement)
            effects.broadcast(.preVote(round: round, value: value, justification: justification, signature: signature))
            phase = .preVoted
        }

        /// Step 2: main-vote b with the first n − t pre-votes as certificate if they all say b; otherwise abstain,
        /// justified by the justification of the first pre-vote for each value.
        private mutating func sendMainVote(_ effects: inout Effects<Message, Bool>) {
            let counted = current.preVotes.first(configuration.quorum)
            let vote: MainVote
            if let forFalse = counted.first(where: { !$0.record.value }),
                let forTrue = counted.first(where: { $0.record.value })
            {
                vote = .abstain(forFalse: forFalse.record.justification, forTrue: forTrue.record.justification)
            } else {
                let certificate = QuorumCertificate(
                    signatures: counted.map { .init(member: $0.sender, bytes: $0.record.signature) })
                vote = .value(counted[0].record.value, certificate: certificate)
            }
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: round, value: vote.value)
            effects.broadcast(.mainVote(round: round, vote: vote, signature: sign(statement)))
            phase = .mainVoted
        }

        /// Step 3 with the first n − t main-votes: release this round's coin share (never earlier); decide b if
        /// they all say b; otherwise go to the next round and pre-vote hard (a main-vote for b was seen) or soft
        /// (all abstained: wait for the coin).
        private mutating func completeRound(_ effects: inout Effects<Message, Bool>) {
            let coinName = BinaryAgreement.coinName(path: path, round: round)
            let (share, verified) = keys.coinShare.verifiedCoinShare(
                name: coinName, key: configuration.coinKey, using: &random)
            current.ownCoinShare = verified
            effects.broadcast(.coinShare(round: round, share: share))

            let counted = current.mainVotes.first(configuration.quorum)
            let certificate = QuorumCertificate(
                signatures: counted.map { .init(member: $0.sender, bytes: $0.record.signature) })
            if let value = counted[0].record.vote.value, counted.allSatisfy({ $0.record.vote.value == value }) {
                decide(value, in: round, certificate: certificate, &effects)
                return
            }
            // At most one value can have a justified main-vote in a round; the first one seen is taken.
            let hard = counted.lazy.compactMap { entry -> (Bool, QuorumCertificate)? in
                if case .value(let value, let certificate) = entry.record.vote { return (value, certificate) }
                return nil
            }.first
            previous = current.coinOnly
            round += 1
            current = RoundState(number: round)
            buffer.discard(before: round)
            verifiedSignatures.nextGeneration()
            if let (value, preVoteCertificate) = hard {
                sendPreVote(value, .hard(preVoteCertificate), &effects)
            } else {
                phase = .awaitingCoin(softCertificate: certificate)
            }
        }

        /// Signs a vote and records the signature as verified: Ed25519 signing is deterministic (RFC 8032
        /// §5.1.6), so when the vote comes back, and in every certificate built from it, its signature is these
        /// bytes, and checking them again would only repeat work (a third of a round's vote checks at n = 4).
        private mutating func sign(_ statement: SignedStatement) -> [UInt8] {
            let signature = keys.identity.sign(statement)
            verifiedSignatures.insert(signature, by: keys.index, on: statement)
            return signature
        }

        private mutating func decide(
            _ value: Bool, in decidedRound: Int, certificate: QuorumCertificate, _ effects: inout Effects<Message, Bool>
        ) {
            precondition(decision == nil && !isFinished, "an instance decides at most once")
            decision = value
            decisionRound = decidedRound
            effects.output(value)
            effects.broadcast(.decided(round: decidedRound, value: value, certificate: certificate))
            phase = .finished
            // Nothing more is needed: free the votes and the buffer.
            buffer.removeAll()
            verifiedSignatures.removeAll()
            preProcesses = VoteTable()
            current = RoundState(number: round)
            previous = nil
        }
    }
}
