import SintraCrypto

/// Validated multi-valued Byzantine agreement, "Protocol VBA" of Cachin–Kursawe–Petzold–Shoup ("Secure
/// and efficient asynchronous broadcast protocols", Crypto 2001), with a commit step (PROTOCOLS.md §6).
///
/// Every party proposes a value satisfying the external predicate Q; all honest parties decide the same
/// value, and it satisfies Q (external validity), although it may come from a corrupted proposer.
///
/// Steps at party i, instance path P:
/// 1. Proposal: verifiable consistent broadcast of w_i at P/proposal:i; receivers sign only values with Q.
/// 2. Wait for n − t delivered proposals (with Q). Commit: consistent broadcast of the bitmap of those
///    proposals at P/commit:i (receivers sign only bitmaps with ≥ n − t bits).
/// 3. Wait for n − t delivered commits (and one's own). Release a share of coin P/permutation; t + 1
///    shares give a uniformly random order Π of the candidates.
/// 4. For l = 1, 2, …: vote on candidate a = Π(l) — yes with a's certified proposal if delivered, else no
///    with one's own committed bitmap (bit a clear). Wait for n − t valid votes; run binary agreement
///    P/agreement:l with input 1 iff some vote is yes. Decision 1: output w_a; decision 0: next l.
///
/// Why the commit step (counting for n = 3t + 1, PROTOCOLS.md §6): among the first n − t commits, each
/// listing n − t candidates, at least t + 2 candidates are listed in t + 1 or more of them; such a
/// candidate gets a yes in every set of n − t valid votes (a no-vote must show a committed bitmap without
/// it, and at most n − t − 1 committed bitmaps lack it), so all honest parties input 1 and decide it. A random candidate
/// is one of those with probability > 1/3, whatever the scheduler does after seeing Π, because Π is
/// revealed only after the commits are fixed. Without the step the scheduler could learn Π and then keep
/// each candidate away from all but a few honest parties (the commit step is not confirmed for CKPS01
/// itself; both dumbo-family implementations have it).
///
/// Binary agreement is the plain one (`BinaryAgreement`): a decision 1 means some honest party input 1,
/// so it holds a's certified proposal and answers `fetch`. This replaces CKPS01's validated binary
/// agreement (which carries the proof inside every 1-vote) by one fetch round in the rare case a party
/// decides without having seen the proposal; validity becomes the stronger "decision 1 only if an honest
/// party saw a yes-vote".
public enum ValidatedAgreement {
    /// The decided candidate, its value, and the certificate that proves it was broadcast.
    public struct Decision: Sendable, Equatable {
        public let candidate: Int
        public let value: [UInt8]
        public let certificate: QuorumCertificate
    }

    enum VoteState: Sendable {
        case pending(Vote)
        case valid(yes: Bool)
        case invalid
    }

    public struct Instance: ProtocolInstance {
        public typealias Output = Decision

        public let path: InstancePath
        public let configuration: GroupConfiguration
        public let me: Int
        private let keys: LocalKeys
        private let predicate: @Sendable ([UInt8]) -> Bool
        private var random: ProtocolRandom

        private var proposals: [ConsistentBroadcast.Instance]
        private var commits: [ConsistentBroadcast.Instance]
        private var deliveredProposals: [Int: ConsistentBroadcast.Delivery] = [:]
        private var deliveredCommits: [Int: (bitmap: Bitmap, delivery: ConsistentBroadcast.Delivery)] = [:]
        private var proposed = false
        private var committed = false
        private var sharedCoin = false
        private var coinShares: [Int: ThresholdCoin.VerifiedShare] = [:]
        /// This party's permutation-coin share, valid by construction (`ThresholdSecretShare.verifiedCoinShare`),
        /// counted without a proof check when it comes back.
        private var ownCoinShare: ThresholdCoin.VerifiedShare?
        private var permutation: [Int]?
        private var iteration = 1
        private var voted: Set<Int> = []
        /// The first vote of each voter per iteration (at most n × n entries): raw until Π is known and it
        /// is checked once, then only its verdict is kept.
        private var votes: [Int: [Int: VoteState]] = [:]
        /// Each voter's vote as received, to tell a repeated vote from a contradicting one.
        private var firstVotes: [Int: [Int: Vote]] = [:]
        private var agreements: [Int: BinaryAgreement.Instance] = [:]
        private var agreementInputs: Set<Int> = []
        private var decision: Decision?
        private var fetchSent = false
        private var fetchAnswered: Set<[Int]> = []

        public init(
            configuration: GroupConfiguration, keys: LocalKeys, path: InstancePath, random: ProtocolRandom,
            predicate: @escaping @Sendable ([UInt8]) -> Bool
        ) {
            self.configuration = configuration
            self.keys = keys
            self.me = keys.index
            self.path = path
            self.random = random
            self.predicate = predicate
            let quorum = configuration.quorum
            let replicas = configuration.replicas
            proposals = configuration.members.map { sender in
                ConsistentBroadcast.Instance(
                    configuration: configuration, keys: keys, path: path.child("proposal", sender), sender: sender,
                    accepts: predicate)
            }
            commits = configuration.members.map { sender in
                ConsistentBroadcast.Instance(
                    configuration: configuration, keys: keys, path: path.child("commit", sender), sender: sender,
                    accepts: { Bitmap(encoded: $0, count: replicas).map { $0.setCount >= quorum } ?? false })
            }
        }

        public var output: Decision? { decision }

        /// Decided, and the deciding binary agreement needs nothing more from us.
        public var isFinished: Bool {
            guard decision != nil else { return false }
            return agreements[iteration]?.isFinished ?? true
        }

        /// The iteration (candidate position) currently being decided.
        public var currentIteration: Int { iteration }

        /// Proposes `value`, which must satisfy the predicate.
        public mutating func propose(_ value: [UInt8]) -> Effects<Message, Output> {
            precondition(!proposed, "propose once")
            precondition(predicate(value), "a party proposes only values that satisfy the predicate")
            proposed = true
            var effects = Effects<Message, Output>()
            let child = proposals[me - 1].broadcast(value)
            effects.append(child.lifted(message: { [me] in .proposal(sender: me, $0) }, output: { _ in nil }))
            advance(&effects)
            return effects
        }

        public mutating func handle(_ message: Message, from node: Int) -> Effects<Message, Output> {
            var effects = Effects<Message, Output>()
            guard configuration.isMember(node) else { return effects }
            switch message {
            case .proposal(let sender, let inner):
                let child = proposals[sender - 1].handle(inner, from: node)
                effects.append(child.lifted(message: { .proposal(sender: sender, $0) }, output: { _ in nil }))
                // The predicate held if this party echoed the payload (`ConsistentBroadcast.Instance.signed`).
                for delivery in child.outputs
                where proposals[sender - 1].signed(delivery.payload) || predicate(delivery.payload) {
                    deliveredProposals[sender] = deliveredProposals[sender] ?? delivery
                }
            case .commit(let sender, let inner):
                let child = commits[sender - 1].handle(inner, from: node)
                effects.append(child.lifted(message: { .commit(sender: sender, $0) }, output: { _ in nil }))
                for delivery in child.outputs {
                    if let bitmap = Bitmap(encoded: delivery.payload, count: configuration.replicas),
                        bitmap.setCount >= configuration.quorum, deliveredCommits[sender] == nil
                    {
                        deliveredCommits[sender] = (bitmap, delivery)
                    }
                }
            case .coinShare(let share):
                handleCoinShare(share, from: node, &effects)
            case .vote(let iteration, let vote):
                if votes[iteration]?[node] == nil {
                    votes[iteration, default: [:]][node] = .pending(vote)
                    firstVotes[iteration, default: [:]][node] = vote
                } else if firstVotes[iteration]?[node] != vote {
                    // The same vote again is no contradiction: a peer that restarted and replayed its
                    // journal sends what it sent before (docs/DURABILITY.md, stage 2).
                    effects.fault(node, path, .equivocation, "second vote in iteration \(iteration)")
                }
            case .agreement(let iteration, let inner):
                var agreement = agreements[iteration] ?? makeAgreement(iteration)
                let child = agreement.handle(inner, from: node)
                agreements[iteration] = agreement
                effects.append(child.lifted(message: { .agreement(iteration: iteration, $0) }, output: { _ in nil }))
            case .fetch(let candidate):
                if let delivery = deliveredProposals[candidate], node != me,
                    fetchAnswered.insert([node, candidate]).inserted
                {
                    effects.send(
                        .fetched(candidate: candidate, proposal: delivery.payload, certificate: delivery.certificate),
                        to: .node(node))
                }
            case .fetched(let candidate, let proposal, let certificate):
                if deliveredProposals[candidate] == nil {
                    if isCertifiedProposal(candidate, proposal, certificate) {
                        deliveredProposals[candidate] = .init(payload: proposal, certificate: certificate)
                    } else {
                        effects.fault(node, path, .invalidProof, "fetched proposal without a valid certificate")
                    }
                }
            }
            advance(&effects)
            return effects
        }

        private mutating func makeAgreement(_ iteration: Int) -> BinaryAgreement.Instance {
            BinaryAgreement.Instance(
                configuration: configuration, keys: keys, path: path.child("agreement", iteration),
                random: random.split())
        }

        private var coinName: [UInt8] { path.child("permutation").encoded }

        private mutating func handleCoinShare(
            _ share: ThresholdCoin.Share, from node: Int, _ effects: inout Effects<Message, Output>
        ) {
            guard share.index == node else {
                effects.fault(node, path, .notAllowed, "coin share claims to be from \(share.index)")
                return
            }
            guard coinShares[node] == nil, permutation == nil else { return }
            if let ownCoinShare, node == me, ownCoinShare.share == share {
                coinShares[node] = ownCoinShare
                return
            }
            do {
                coinShares[node] = try configuration.coinKey.verifyCoinShare(share, name: coinName)
            } catch {
                effects.fault(node, path, .invalidProof, "permutation coin share: \(error)")
            }
        }

        private func isCertifiedProposal(_ candidate: Int, _ proposal: [UInt8], _ certificate: QuorumCertificate)
            -> Bool
        {
            // The same proposal with the same certificate as one delivered here was checked then (every entry
            // of `deliveredProposals` was): yes-votes usually carry the sender's own c-final certificate, so
            // this skips a quorum-certificate check per vote.
            if let known = deliveredProposals[candidate], sameBytes(known.payload, proposal), known.certificate == certificate {
                return true
            }
            return (proposals[candidate - 1].signed(proposal)
                || deliveredProposals[candidate].map { sameBytes($0.payload, proposal) } == true
                || predicate(proposal))
                && ConsistentBroadcast.verify(
                    payload: proposal, certificate: certificate, path: path.child("proposal", candidate),
                    configuration: configuration)
        }

        /// Moves through the steps as far as the collected messages allow.
        private mutating func advance(_ effects: inout Effects<Message, Output>) {
            if !committed, deliveredProposals.count >= configuration.quorum {
                committed = true
                var bitmap = Bitmap(count: configuration.replicas)
                for candidate in deliveredProposals.keys { bitmap[candidate] = true }
                let child = commits[me - 1].broadcast(bitmap.encoded)
                effects.append(child.lifted(message: { [me] in .commit(sender: me, $0) }, output: { _ in nil }))
            }
            if !sharedCoin, deliveredCommits.count >= configuration.quorum, deliveredCommits[me] != nil {
                // Π is revealed only now, after this party's commit and n − t others are fixed.
                sharedCoin = true
                let (share, verified) = keys.coinShare.verifiedCoinShare(
                    name: coinName, key: configuration.coinKey, using: &random)
                ownCoinShare = verified
                effects.broadcast(.coinShare(share))
            }
            if permutation == nil, coinShares.count >= configuration.weakQuorum,
                let value = try? configuration.coinKey.combineCoin(Array(coinShares.values), name: coinName)
            {
                permutation = CoinPermutation.permutation(of: configuration.replicas, coin: value)
            }
            advanceIterations(&effects)
        }

        private mutating func advanceIterations(_ effects: inout Effects<Message, Output>) {
            guard let permutation, sharedCoin else { return }
            while iteration <= configuration.replicas {
                let candidate = permutation[iteration - 1]
                if decision == nil, voted.insert(iteration).inserted {
                    effects.broadcast(.vote(iteration: iteration, myVote(on: candidate)))
                }
                if !agreementInputs.contains(iteration), let input = agreementInput(iteration, candidate, &effects) {
                    agreementInputs.insert(iteration)
                    var agreement = agreements[iteration] ?? makeAgreement(iteration)
                    let child = agreement.propose(input)
                    agreements[iteration] = agreement
                    let current = iteration
                    effects.append(child.lifted(message: { .agreement(iteration: current, $0) }, output: { _ in nil }))
                }
                guard let decided = agreements[iteration]?.decision else { return }
                if decided {
                    decide(candidate, &effects)
                    return
                }
                iteration += 1
            }
        }

        private func myVote(on candidate: Int) -> Vote {
            if let delivery = deliveredProposals[candidate] {
                return .yes(proposal: delivery.payload, certificate: delivery.certificate)
            }
            // Not delivered now, so not in our committed bitmap either.
            let own = deliveredCommits[me]!
            return .no(bitmap: own.delivery.payload, certificate: own.delivery.certificate)
        }

        /// The binary agreement input once n − t valid votes are in: 1 iff some valid vote is yes.
        private mutating func agreementInput(
            _ iteration: Int, _ candidate: Int, _ effects: inout Effects<Message, Output>
        ) -> Bool? {
            var valid = 0
            var sawYes = false
            for voter in (votes[iteration] ?? [:]).keys.sorted() {
                if case .pending(let vote) = votes[iteration]![voter]! {
                    votes[iteration]![voter] = check(vote, by: voter, on: candidate, &effects)
                }
                if case .valid(let yes) = votes[iteration]![voter]! {
                    valid += 1
                    sawYes = sawYes || yes
                }
            }
            return valid >= configuration.quorum ? sawYes : nil
        }

        /// A yes-vote must carry the candidate's certified proposal (which delivers it here too); a no-vote
        /// must carry the voter's committed bitmap with the candidate's bit clear.
        private mutating func check(
            _ vote: Vote, by voter: Int, on candidate: Int, _ effects: inout Effects<Message, Output>
        ) -> VoteState {
            switch vote {
            case .yes(let proposal, let certificate):
                guard isCertifiedProposal(candidate, proposal, certificate) else {
                    effects.fault(voter, path, .invalidProof, "yes-vote without a certified proposal")
                    return .invalid
                }
                if deliveredProposals[candidate] == nil {
                    deliveredProposals[candidate] = .init(payload: proposal, certificate: certificate)
                }
                return .valid(yes: true)
            case .no(let bytes, let certificate):
                // A commit delivered here with the same bytes and certificate was checked on delivery.
                let known = deliveredCommits[voter].map {
                    $0.delivery.payload == bytes && $0.delivery.certificate == certificate
                }
                guard let bitmap = Bitmap(encoded: bytes, count: configuration.replicas), !bitmap[candidate],
                    bitmap.setCount >= configuration.quorum,
                    known == true
                        || ConsistentBroadcast.verify(
                            payload: bytes, certificate: certificate, path: path.child("commit", voter),
                            configuration: configuration)
                else {
                    effects.fault(voter, path, .unjustified, "no-vote without a committed bitmap lacking the candidate")
                    return .invalid
                }
                return .valid(yes: false)
            }
        }

        private mutating func decide(_ candidate: Int, _ effects: inout Effects<Message, Output>) {
            guard decision == nil else { return }
            if let delivery = deliveredProposals[candidate] {
                decision = Decision(candidate: candidate, value: delivery.payload, certificate: delivery.certificate)
                effects.output(decision!)
            } else if !fetchSent {
                // Some honest party input 1, so it holds the certified proposal; ask everyone.
                fetchSent = true
                effects.broadcast(.fetch(candidate: candidate))
            }
        }
    }
}
